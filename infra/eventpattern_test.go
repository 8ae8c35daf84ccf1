package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// matchPattern reports whether event matches an EventBridge event pattern,
// for the part of the pattern language signet's rule uses: nested objects,
// arrays of alternatives that are exact values or {"prefix": "..."}. An
// event field that is an array matches when any of its elements does. A
// field the pattern names but the event lacks does not match. Any other
// operator is an error, so the test fails instead of guessing.
func matchPattern(pattern, event map[string]interface{}) (bool, error) {
	for field, want := range pattern {
		got, present := event[field]
		switch want := want.(type) {
		case map[string]interface{}:
			sub, ok := got.(map[string]interface{})
			if !present || !ok {
				return false, nil
			}
			m, err := matchPattern(want, sub)
			if err != nil || !m {
				return false, err
			}
		case []interface{}:
			if !present {
				return false, nil
			}
			values := []interface{}{got}
			if list, ok := got.([]interface{}); ok {
				values = list
			}
			m, err := anyAlternative(want, values)
			if err != nil || !m {
				return false, err
			}
		default:
			return false, fmt.Errorf("pattern field %q is %T; EventBridge wants an object or an array", field, want)
		}
	}
	return true, nil
}

// anyAlternative reports whether one of values matches one of alternatives.
func anyAlternative(alternatives, values []interface{}) (bool, error) {
	for _, alt := range alternatives {
		for _, v := range values {
			switch alt := alt.(type) {
			case map[string]interface{}:
				if len(alt) != 1 {
					return false, fmt.Errorf("unsupported content filter %v", alt)
				}
				prefix, ok := alt["prefix"].(string)
				if !ok {
					return false, fmt.Errorf("unsupported content filter %v", alt)
				}
				if s, ok := v.(string); ok && len(s) >= len(prefix) && s[:len(prefix)] == prefix {
					return true, nil
				}
			case string, float64, bool, nil:
				if alt == v {
					return true, nil
				}
			default:
				return false, fmt.Errorf("unsupported pattern value %v (%T)", alt, alt)
			}
		}
	}
	return false, nil
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
		t.Errorf("matchPattern with anything-but: no error, want one (unsupported operator)")
	}
}

// sampleEvents is whether the rule must deliver each sample under events/.
// The list is fixed so that a missing file fails the test. malformed.json is
// not an event at all (EventBridge never delivers it), so it is not here.
var sampleEvents = map[string]bool{
	"push.json":          true,
	"push-untagged.json": true,
	"delete.json":        true,
	// The pattern cannot tell a signature tag or a bad digest from an image;
	// the signer skips those (internal/ecrevent and the manifest check).
	"push-sig-tag.json":    true,
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
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := readEvent(t, "push.json")
			detail := ev["detail"].(map[string]interface{})
			if tc.value == nil {
				delete(detail, tc.field)
			} else {
				detail[tc.field] = tc.value
			}
			got, err := matchPattern(pattern, ev)
			if err != nil || got != tc.want {
				t.Errorf("rule pattern matches push with %s=%v = %v, %v, want %v", tc.field, tc.value, got, err, tc.want)
			}
		})
	}
	for _, tc := range []struct{ field, value string }{{"source", "aws.s3"}, {"detail-type", "ECR Image Scan"}} {
		ev := readEvent(t, "push.json")
		ev[tc.field] = tc.value
		if got, err := matchPattern(pattern, ev); err != nil || got {
			t.Errorf("rule pattern matches push with %s=%s = %v, %v, want false", tc.field, tc.value, got, err)
		}
	}
}
