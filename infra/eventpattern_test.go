package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// matchPattern reports whether event matches an EventBridge event pattern,
// for the part of the pattern language signet's rule uses:
//
//   - nested objects, and "$or": [pattern, pattern, ...] at any object
//     level, which matches when any of its patterns (at least two, each an
//     object) matches that same level of the event;
//   - arrays of alternatives, any of which may match: exact values,
//     {"prefix": "..."}, {"exists": true|false} and
//     {"anything-but": {"prefix": "..."}}.
//
// As in EventBridge, patterns apply to leaves: an event field that is an
// array stands for its elements (one matching element is enough, and an
// empty array has none), and an object is no leaf. {"exists": false}
// matches when the field has no leaf (absent, an empty array or an
// object), {"exists": true} when it has one (null included); a field the
// pattern names with other alternatives but the event lacks does not match.
// {"prefix"} matches strings only; {"anything-but": {"prefix"}} matches a
// string leaf that does not start with the prefix. Any other operator, and
// anything-but prefix against a leaf that is not a string (whose EventBridge
// semantics this matcher does not pin down), is an error, so the test fails
// instead of guessing. Every field is evaluated, so an error does not hide
// behind a field that already failed to match.
func matchPattern(pattern, event map[string]interface{}) (bool, error) {
	match := true
	for field, want := range pattern {
		var m bool
		var err error
		if field == "$or" {
			m, err = matchOr(want, event)
		} else {
			got, present := event[field]
			switch want := want.(type) {
			case map[string]interface{}:
				if len(want) == 0 {
					return false, fmt.Errorf("pattern field %q is an empty object", field)
				}
				// A missing object, or a leaf where the pattern has an
				// object, has no leaves below it: match against nothing, so
				// that only exists:false can match there.
				sub, _ := got.(map[string]interface{})
				if sub == nil {
					sub = map[string]interface{}{}
				}
				m, err = matchPattern(want, sub)
			case []interface{}:
				if len(want) == 0 {
					return false, fmt.Errorf("pattern field %q is an empty array", field)
				}
				var values []interface{}
				if present {
					values = leaves(got)
				}
				m, err = anyAlternative(want, values)
			default:
				return false, fmt.Errorf("pattern field %q is %T; EventBridge wants an object or an array", field, want)
			}
		}
		if err != nil {
			return false, err
		}
		match = match && m
	}
	return match, nil
}

// matchOr matches an "$or" array against event: any of its patterns may
// match. All are evaluated, for the same reason as in matchPattern.
func matchOr(or interface{}, event map[string]interface{}) (bool, error) {
	branches, ok := or.([]interface{})
	if !ok || len(branches) < 2 {
		return false, fmt.Errorf("$or is %v; EventBridge wants an array of at least two patterns", or)
	}
	match := false
	for _, b := range branches {
		p, ok := b.(map[string]interface{})
		if !ok || len(p) == 0 {
			return false, fmt.Errorf("$or alternative %v is not a non-empty object", b)
		}
		m, err := matchPattern(p, event)
		if err != nil {
			return false, err
		}
		match = match || m
	}
	return match, nil
}

// leaves returns the leaf values of an event field: the value itself, or the
// elements of an array (of nested arrays too), without objects.
func leaves(v interface{}) []interface{} {
	switch v := v.(type) {
	case []interface{}:
		var out []interface{}
		for _, e := range v {
			out = append(out, leaves(e)...)
		}
		return out
	case map[string]interface{}:
		return nil
	default:
		return []interface{}{v}
	}
}

// anyAlternative reports whether one of values (a field's leaves, none when
// it is absent) matches one of alternatives.
func anyAlternative(alternatives, values []interface{}) (bool, error) {
	match := false
	for _, alt := range alternatives {
		m, err := matchAlternative(alt, values)
		if err != nil {
			return false, err
		}
		match = match || m
	}
	return match, nil
}

// matchAlternative reports whether one alternative matches any of values.
func matchAlternative(alt interface{}, values []interface{}) (bool, error) {
	switch alt := alt.(type) {
	case map[string]interface{}:
		if len(alt) != 1 {
			return false, fmt.Errorf("unsupported content filter %v", alt)
		}
		if exists, ok := alt["exists"]; ok {
			want, ok := exists.(bool)
			if !ok {
				return false, fmt.Errorf("exists is %v (%T); EventBridge wants true or false", exists, exists)
			}
			return (len(values) > 0) == want, nil
		}
		if prefix, ok := alt["prefix"].(string); ok {
			for _, v := range values {
				if s, ok := v.(string); ok && strings.HasPrefix(s, prefix) {
					return true, nil
				}
			}
			return false, nil
		}
		if but, ok := alt["anything-but"].(map[string]interface{}); ok && len(but) == 1 {
			prefix, ok := but["prefix"].(string)
			if !ok || prefix == "" {
				return false, fmt.Errorf("unsupported anything-but filter %v", but)
			}
			match := false
			for _, v := range values {
				s, ok := v.(string)
				if !ok {
					return false, fmt.Errorf("anything-but prefix against %v (%T): only strings are supported", v, v)
				}
				match = match || !strings.HasPrefix(s, prefix)
			}
			return match, nil
		}
		return false, fmt.Errorf("unsupported content filter %v", alt)
	case string, float64, bool, nil:
		for _, v := range values {
			if alt == v {
				return true, nil
			}
		}
		return false, nil
	default:
		return false, fmt.Errorf("unsupported pattern value %v (%T)", alt, alt)
	}
}

func TestMatchPattern(t *testing.T) {
	pattern := map[string]interface{}{
		"source": []interface{}{"aws.ecr"},
		"detail": map[string]interface{}{"name": []interface{}{map[string]interface{}{"prefix": "team/"}, "base"}},
	}
	tests := []struct {
		name  string
		event string
		want  bool
	}{
		{"exact and prefix", `{"source": "aws.ecr", "detail": {"name": "team/api"}}`, true},
		{"exact", `{"source": "aws.ecr", "detail": {"name": "base"}}`, true},
		{"exact is not prefix", `{"source": "aws.ecr", "detail": {"name": "base2"}}`, false},
		{"other source", `{"source": "aws.s3", "detail": {"name": "base"}}`, false},
		{"missing field", `{"source": "aws.ecr", "detail": {}}`, false},
		{"missing object", `{"source": "aws.ecr"}`, false},
		{"array in event", `{"source": ["x", "aws.ecr"], "detail": {"name": ["y", "team/x"]}}`, true},
		{"prefix is case-sensitive", `{"source": "aws.ecr", "detail": {"name": "Team/api"}}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ev map[string]interface{}
			if err := json.Unmarshal([]byte(tc.event), &ev); err != nil {
				t.Fatal(err)
			}
			got, err := matchPattern(pattern, ev)
			if err != nil || got != tc.want {
				t.Errorf("matchPattern(%s) = %v, %v, want %v", tc.event, got, err, tc.want)
			}
		})
	}
	if _, err := matchPattern(map[string]interface{}{"a": []interface{}{map[string]interface{}{"anything-but": "x"}}}, map[string]interface{}{"a": "y"}); err == nil {
		t.Errorf("matchPattern with anything-but a value: no error, want one (unsupported operator)")
	}
}

// TestMatchPatternOperators checks $or, exists and anything-but prefix,
// with the shape of the rule's tag filter.
func TestMatchPatternOperators(t *testing.T) {
	var pattern map[string]interface{}
	if err := json.Unmarshal([]byte(`{
		"source": ["aws.ecr"],
		"detail": {
			"action-type": ["PUSH", "DELETE"],
			"$or": [
				{"image-tag": [{"exists": false}]},
				{"image-tag": [{"anything-but": {"prefix": "sha256-"}}]}
			]
		}
	}`), &pattern); err != nil {
		t.Fatal(err)
	}
	sig := "sha256-9b2d3c1a0e7f6a5b4c3d2e1f00112233445566778899aabbccddeeff00112233.sig"
	tests := []struct {
		name   string
		detail string
		want   bool
	}{
		{"normal tag", `{"action-type": "PUSH", "image-tag": "v1"}`, true},
		{"no tag", `{"action-type": "PUSH"}`, true},
		{"no tag, other action", `{"action-type": "REPLICATE"}`, false},
		{"sha256- tag", `{"action-type": "PUSH", "image-tag": "sha256-abc"}`, false},
		{".sig tag", `{"action-type": "PUSH", "image-tag": "` + sig + `"}`, false},
		{"delete of a .sig tag", `{"action-type": "DELETE", "image-tag": "` + sig + `"}`, false},
		{"delete of a normal tag", `{"action-type": "DELETE", "image-tag": "v1"}`, true},
		{"delete without a tag", `{"action-type": "DELETE"}`, true},
		{"prefix is case-sensitive", `{"action-type": "PUSH", "image-tag": "SHA256-abc"}`, true},
		{"shorter than the prefix", `{"action-type": "PUSH", "image-tag": "sha256"}`, true},
		{"prefix inside the tag", `{"action-type": "PUSH", "image-tag": "v1-sha256-abc"}`, true},
		{"empty tag is present", `{"action-type": "PUSH", "image-tag": ""}`, true},
		{"array with one normal tag", `{"action-type": "PUSH", "image-tag": ["sha256-abc", "v1"]}`, true},
		{"array of signature tags", `{"action-type": "PUSH", "image-tag": ["sha256-abc", "sha256-def.att"]}`, false},
		{"empty array has no leaf", `{"action-type": "PUSH", "image-tag": []}`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var detail map[string]interface{}
			if err := json.Unmarshal([]byte(tc.detail), &detail); err != nil {
				t.Fatal(err)
			}
			ev := map[string]interface{}{"source": "aws.ecr", "detail": detail}
			got, err := matchPattern(pattern, ev)
			if err != nil || got != tc.want {
				t.Errorf("matchPattern(detail %s) = %v, %v, want %v", tc.detail, got, err, tc.want)
			}
		})
	}

	// Each operator on its own.
	one := func(alt string, event string) (bool, error) {
		var p, ev map[string]interface{}
		if err := json.Unmarshal([]byte(`{"a": [`+alt+`]}`), &p); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(event), &ev); err != nil {
			t.Fatal(err)
		}
		return matchPattern(p, ev)
	}
	for _, tc := range []struct {
		alt, event string
		want       bool
	}{
		{`{"exists": true}`, `{"a": "x"}`, true},
		{`{"exists": true}`, `{}`, false},
		{`{"exists": true}`, `{"a": {"b": "x"}}`, false}, // an object is no leaf
		{`{"exists": false}`, `{}`, true},
		{`{"exists": false}`, `{"a": "x"}`, false},
		{`{"exists": false}`, `{"a": {"b": "x"}}`, true},
		{`{"anything-but": {"prefix": "sha256-"}}`, `{"a": "v1"}`, true},
		{`{"anything-but": {"prefix": "sha256-"}}`, `{"a": "sha256-abc"}`, false},
		{`{"anything-but": {"prefix": "sha256-"}}`, `{}`, false}, // absent is not "anything but"
		{`"x", {"exists": false}`, `{}`, true},
		{`"x", {"exists": false}`, `{"a": "x"}`, true},
		{`"x", {"exists": false}`, `{"a": "y"}`, false},
	} {
		if got, err := one(tc.alt, tc.event); err != nil || got != tc.want {
			t.Errorf("[%s] against %s = %v, %v, want %v", tc.alt, tc.event, got, err, tc.want)
		}
	}
	// A missing object has no leaves: only exists:false matches under it.
	for _, tc := range []struct {
		pattern string
		want    bool
	}{
		{`{"detail": {"a": [{"exists": false}]}}`, true},
		{`{"detail": {"a": [{"anything-but": {"prefix": "x"}}]}}`, false},
	} {
		var p map[string]interface{}
		if err := json.Unmarshal([]byte(tc.pattern), &p); err != nil {
			t.Fatal(err)
		}
		if got, err := matchPattern(p, map[string]interface{}{}); err != nil || got != tc.want {
			t.Errorf("%s against {} = %v, %v, want %v", tc.pattern, got, err, tc.want)
		}
	}

	// What the matcher does not know is an error, not a guess, even when
	// another field already fails to match.
	for _, tc := range []struct{ pattern, event string }{
		{`{"a": [{"exists": "no"}]}`, `{}`},
		{`{"a": [{"anything-but": {"suffix": ".sig"}}]}`, `{"a": "x"}`},
		{`{"a": [{"anything-but": ["x"]}]}`, `{"a": "y"}`},
		{`{"a": [{"anything-but": {"prefix": "x"}}]}`, `{"a": 5}`},
		{`{"a": [{"anything-but": {"prefix": "x"}}]}`, `{"a": null}`},
		{`{"$or": [{"a": ["x"]}]}`, `{"a": "x"}`},
		{`{"$or": {"a": ["x"]}}`, `{"a": "x"}`},
		{`{"$or": [{"a": ["x"]}, "b"]}`, `{"a": "x"}`},
		{`{"$or": [{"a": ["x"]}, {}]}`, `{"a": "x"}`},
		{`{"$or": [{"a": ["x"]}, {"b": [{"suffix": "y"}]}]}`, `{"a": "x"}`},
		{`{"a": ["x"], "b": [{"wildcard": "*"}]}`, `{"a": "y", "b": "z"}`},
		{`{"a": []}`, `{"a": "x"}`},
	} {
		var p, ev map[string]interface{}
		if err := json.Unmarshal([]byte(tc.pattern), &p); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(tc.event), &ev); err != nil {
			t.Fatal(err)
		}
		if got, err := matchPattern(p, ev); err == nil {
			t.Errorf("matchPattern(%s, %s) = %v, no error, want one", tc.pattern, tc.event, got)
		}
	}
}

// sampleEvents is whether the rule must deliver each sample under events/.
// The list is fixed so that a missing file fails the test. malformed.json is
// not an event at all (EventBridge never delivers it), so it is not here.
var sampleEvents = map[string]bool{
	"push.json":          true,
	"push-untagged.json": true,
	"delete.json":        true,
	// Signature tags (sha256-*) are dropped by the rule; the signer would
	// skip them anyway, from the manifest's media types.
	"push-sig-tag.json": false,
	// The pattern cannot tell a bad digest from an image; the signer skips
	// it (internal/ecrevent).
	"push-bad-digest.json": true,
	"push-failure.json":    false,
	"scan.json":            false,
}

// rulePattern returns the event pattern of the synthesized rule.
func rulePattern(t *testing.T, s *synthesized) map[string]interface{} {
	t.Helper()
	_, rule := s.only(t, "AWS::Events::Rule")
	return rule["Properties"].(map[string]interface{})["EventPattern"].(map[string]interface{})
}

func readEvent(t *testing.T, name string) map[string]interface{} {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "events", name))
	if err != nil {
		t.Fatalf("reading sample event: %v", err)
	}
	var ev map[string]interface{}
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatalf("events/%s: %v", name, err)
	}
	return ev
}

func TestRuleMatchesSampleEvents(t *testing.T) {
	pattern := rulePattern(t, full(t))
	for name, want := range sampleEvents {
		t.Run(name, func(t *testing.T) {
			got, err := matchPattern(pattern, readEvent(t, name))
			if err != nil || got != want {
				t.Errorf("rule pattern matches events/%s = %v, %v, want %v", name, got, err, want)
			}
		})
	}
}

// TestRuleRepositoryFilter varies push.json to check the repository filter
// and the other fields one at a time.
func TestRuleRepositoryFilter(t *testing.T) {
	pattern := rulePattern(t, full(t)) // repositories: team/*, base-images
	tests := []struct {
		name  string
		field string
		value interface{}
		want  bool
	}{
		{"in prefix", "repository-name", "team/web/frontend", true},
		{"exact name", "repository-name", "base-images", true},
		{"exact name is no prefix", "repository-name", "base-images-old", false},
		{"outside", "repository-name", "other/api", false},
		{"prefix needs the slash", "repository-name", "teams/api", false},
		{"other action", "action-type", "REPLICATE", false},
		{"no result", "result", nil, false},
		{"no tag", "image-tag", nil, true},
		{"normal tag", "image-tag", "v1", true},
		{".att tag", "image-tag", "sha256-" + hex64 + ".att", false},
		{".sbom tag", "image-tag", "sha256-" + hex64 + ".sbom", false},
		{"referrers fallback tag", "image-tag", "sha256-" + hex64, false},
		{"user tag starting with sha256-", "image-tag", "sha256-abc", false},
	}
	for _, tc := range tests {
		for _, action := range []string{"PUSH", "DELETE"} {
			t.Run(tc.name+"/"+action, func(t *testing.T) {
				ev := readEvent(t, "push.json")
				detail := ev["detail"].(map[string]interface{})
				if tc.field != "action-type" {
					detail["action-type"] = action
				}
				if tc.value == nil {
					delete(detail, tc.field)
				} else {
					detail[tc.field] = tc.value
				}
				got, err := matchPattern(pattern, ev)
				if err != nil || got != tc.want {
					t.Errorf("rule pattern matches %s with %s=%v = %v, %v, want %v", action, tc.field, tc.value, got, err, tc.want)
				}
			})
		}
	}
	for _, tc := range []struct{ field, value string }{{"source", "aws.s3"}, {"detail-type", "ECR Image Scan"}} {
		ev := readEvent(t, "push.json")
		ev[tc.field] = tc.value
		if got, err := matchPattern(pattern, ev); err != nil || got {
			t.Errorf("rule pattern matches push with %s=%s = %v, %v, want false", tc.field, tc.value, got, err)
		}
	}
}

const hex64 = "9b2d3c1a0e7f6a5b4c3d2e1f00112233445566778899aabbccddeeff00112233"

// TestRuleDetailWithoutRepositoryFilter checks the pattern signet uses when
// every repository is to be signed (repositories "*"), which the synthesized
// test stacks do not cover: no repository-name, the same tag filter.
func TestRuleDetailWithoutRepositoryFilter(t *testing.T) {
	pattern := map[string]interface{}{
		"source":      []interface{}{ecrSource},
		"detail-type": []interface{}{ecrDetailType},
		"detail":      ruleDetail(Config{Repositories: []string{"*"}}.RepositoryFilter()),
	}
	// Through JSON, as CloudFormation gets it.
	raw, err := json.Marshal(pattern)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &pattern); err != nil {
		t.Fatal(err)
	}
	if _, ok := pattern["detail"].(map[string]interface{})["repository-name"]; ok {
		t.Errorf("pattern for all repositories has a repository-name: %s", raw)
	}
	for name, want := range sampleEvents {
		got, err := matchPattern(pattern, readEvent(t, name))
		if err != nil || got != want {
			t.Errorf("pattern for all repositories matches events/%s = %v, %v, want %v", name, got, err, want)
		}
	}
	ev := readEvent(t, "push.json")
	ev["detail"].(map[string]interface{})["repository-name"] = "anything/else"
	if got, err := matchPattern(pattern, ev); err != nil || !got {
		t.Errorf("pattern for all repositories matches a push to anything/else = %v, %v, want true", got, err)
	}
}
