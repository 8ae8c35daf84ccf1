// Package policy holds signet's repository policy: an ordered list of rules
// that say, for each ECR repository (and optionally tag), whether signet signs
// a pushed image, verifies signatures others made with trusted keys, or leaves
// it alone.
//
// A policy is parsed and validated once, from JSON or YAML (see
// docs/policy.md), and then matched against every push event:
//
//	p, err := policy.Parse(data)
//	rule := p.Match("team/api", "v1.2.3")
//
// The first rule whose repository and tag globs match wins; when none does,
// the default rule applies. Keys of verify rules are ready to use: PEM keys are
// parsed at once, KMS keys are resolved on first use (no network at parse time).
package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	goyaml "go.yaml.in/yaml/v2"
	"sigs.k8s.io/yaml"
)

// Mode says what signet does with an image a rule matches.
type Mode string

// The modes a rule can have.
const (
	// Sign means signet signs the digest with its own KMS key.
	Sign Mode = "sign"
	// Verify means signet checks that the digest carries a signature by the
	// rule's trusted keys, and signs nothing.
	Verify Mode = "verify"
	// Ignore means signet records nothing for the image.
	Ignore Mode = "ignore"
)

// Valid reports whether m is one of the known modes.
func (m Mode) Valid() bool { return m == Sign || m == Verify || m == Ignore }

// Require says how many of a verify rule's keys must have signed.
type Require string

// The values of a verify rule's require field.
const (
	// RequireAny means one valid signature by any trusted key is enough.
	RequireAny Require = "any"
	// RequireAll means every trusted key must have signed the digest.
	RequireAll Require = "all"
)

// DefaultRuleName is the name of the default rule when the policy gives none.
const DefaultRuleName = "default"

// Rule is one entry of the policy, ready to match and use.
type Rule struct {
	// Name identifies the rule in verdicts and errors.
	Name string
	// Repositories are the repository globs; empty only for the default rule.
	Repositories []string
	// Tags, when not empty, restrict the rule to pushes with a matching tag.
	Tags []string
	// Mode is what signet does with matching images.
	Mode Mode
	// Require is how many Keys must have signed; set only for verify rules.
	Require Require
	// Keys are the trusted keys of a verify rule, in the order written.
	Keys []Key
	// Default is true for the policy's default rule.
	Default bool
}

// RequireAll reports whether every key of the rule must have signed.
func (r Rule) RequireAll() bool { return r.Require == RequireAll }

// Policy is a validated, ordered list of rules and a default rule.
type Policy struct {
	rules []Rule
	def   Rule
}

// Default returns the policy signet uses when none is configured: sign
// everything.
func Default() *Policy {
	return &Policy{def: Rule{Name: DefaultRuleName, Mode: Sign, Default: true}}
}

// Rules returns the policy's rules in order, without the default rule.
func (p *Policy) Rules() []Rule { return append([]Rule(nil), p.rules...) }

// DefaultRule returns the rule used when no other rule matches.
func (p *Policy) DefaultRule() Rule { return p.def }

// Match returns the first rule that matches repository and tag, or the
// default rule. repository is the ECR repository name without the registry
// host, for example "team/api". tag is the pushed tag, or "" for a push by
// digest; a rule with tag globs never matches an empty tag.
func (p *Policy) Match(repository, tag string) Rule {
	for _, r := range p.rules {
		if r.matches(repository, tag) {
			return r
		}
	}
	return p.def
}

func (r Rule) matches(repository, tag string) bool {
	if !anyMatch(r.Repositories, repository, matchRepository) {
		return false
	}
	if len(r.Tags) == 0 {
		return true
	}
	return tag != "" && anyMatch(r.Tags, tag, matchTag)
}

func anyMatch(patterns []string, s string, match func(pattern, s string) bool) bool {
	for _, p := range patterns {
		if match(p, s) {
			return true
		}
	}
	return false
}

// document is the policy as written; field names are the file format.
type document struct {
	Rules   []json.RawMessage `json:"rules"`
	Default json.RawMessage   `json:"default"`
}

type ruleDoc struct {
	Name         string   `json:"name"`
	Repositories []string `json:"repositories"`
	Tags         []string `json:"tags"`
	Mode         Mode     `json:"mode"`
	Require      Require  `json:"require"`
	Keys         []string `json:"keys"`
}

type defaultDoc struct {
	Name    string   `json:"name"`
	Mode    Mode     `json:"mode"`
	Require Require  `json:"require"`
	Keys    []string `json:"keys"`
}

// ErrInvalid is wrapped by every error Parse returns for a policy that is not
// valid, so callers can tell a bad policy from other failures.
var ErrInvalid = errors.New("invalid policy")

// RuleError is a problem with one rule of a policy.
type RuleError struct {
	// Rule is the rule's name, or "#N" (1-based) for a rule without one.
	Rule string
	// Err says what is wrong.
	Err error
}

func (e *RuleError) Error() string { return fmt.Sprintf("rule %q: %v", e.Rule, e.Err) }

// Unwrap returns the problem.
func (e *RuleError) Unwrap() error { return e.Err }

// Is reports ErrInvalid, so errors.Is(err, ErrInvalid) holds for every
// validation error.
func (e *RuleError) Is(target error) bool { return target == ErrInvalid }

// Parse reads a policy in JSON or YAML and validates all of it: unknown
// fields, rule names (required, unique), modes, globs, require values and
// keys (PEM public keys are parsed, awskms:// references checked for form).
// An error names the offending rule and wraps ErrInvalid.
func Parse(data []byte) (*Policy, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%w: the document is empty", ErrInvalid)
	}
	if err := singleDocument(data); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if !bytes.HasPrefix(bytes.TrimSpace(js), []byte("{")) {
		return nil, fmt.Errorf("%w: the document is not a mapping (with rules and default)", ErrInvalid)
	}
	var doc document
	if err := decodeStrict(js, &doc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	p := &Policy{}
	seen := map[string]bool{}
	for i, raw := range doc.Rules {
		// Read the name leniently first, so that every later error,
		// unknown fields included, can name the rule.
		var named struct {
			Name any `json:"name"`
		}
		_ = json.Unmarshal(raw, &named)
		label, _ := named.Name.(string)
		if label == "" {
			label = fmt.Sprintf("#%d", i+1)
		}
		var rd ruleDoc
		if err := decodeStrict(raw, &rd); err != nil {
			return nil, &RuleError{Rule: label, Err: err}
		}
		r, err := rd.rule()
		if err != nil {
			return nil, &RuleError{Rule: label, Err: err}
		}
		if seen[r.Name] {
			return nil, &RuleError{Rule: label, Err: errors.New("name is used by an earlier rule")}
		}
		seen[r.Name] = true
		p.rules = append(p.rules, r)
	}
	p.def = Rule{Name: DefaultRuleName, Mode: Sign, Default: true}
	if doc.Default != nil && string(doc.Default) != "null" {
		var dd defaultDoc
		if err := decodeStrict(doc.Default, &dd); err != nil {
			return nil, &RuleError{Rule: DefaultRuleName, Err: err}
		}
		def, err := dd.rule()
		if err != nil {
			return nil, &RuleError{Rule: def.Name, Err: err}
		}
		p.def = def
	}
	if seen[p.def.Name] {
		return nil, &RuleError{Rule: p.def.Name, Err: errors.New("name is that of the default rule")}
	}
	return p, nil
}

// singleDocument rejects YAML streams of more than one document, which
// sigs.k8s.io/yaml would silently cut to the first.
func singleDocument(data []byte) error {
	dec := goyaml.NewDecoder(bytes.NewReader(data))
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return err
	}
	if err := dec.Decode(&doc); err != io.EOF {
		return errors.New("more than one YAML document, or data after the document")
	}
	return nil
}

// decodeStrict decodes one JSON value into v, rejecting unknown fields and
// trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("unexpected data after the policy")
	}
	return nil
}

func (rd ruleDoc) rule() (Rule, error) {
	if rd.Name == "" {
		return Rule{}, errors.New("name is required")
	}
	if len(rd.Repositories) == 0 {
		return Rule{}, errors.New("repositories: at least one glob is required")
	}
	for i, g := range rd.Repositories {
		if err := validRepositoryGlob(g); err != nil {
			return Rule{}, fmt.Errorf("repositories: glob %d %q: %w", i+1, g, err)
		}
	}
	for i, g := range rd.Tags {
		if err := validTagGlob(g); err != nil {
			return Rule{}, fmt.Errorf("tags: glob %d %q: %w", i+1, g, err)
		}
	}
	r, err := modeAndKeys(rd.Mode, rd.Require, rd.Keys)
	if err != nil {
		return Rule{}, err
	}
	r.Name = rd.Name
	r.Repositories = rd.Repositories
	r.Tags = rd.Tags
	return r, nil
}

func (dd defaultDoc) rule() (Rule, error) {
	name := dd.Name
	if name == "" {
		name = DefaultRuleName
	}
	mode := dd.Mode
	if mode == "" {
		mode = Sign
	}
	r, err := modeAndKeys(mode, dd.Require, dd.Keys)
	r.Name, r.Default = name, true
	return r, err
}

// modeAndKeys validates the parts a rule and the default rule share.
func modeAndKeys(mode Mode, require Require, keys []string) (Rule, error) {
	switch {
	case mode == "":
		return Rule{}, fmt.Errorf("mode is required (one of %s, %s, %s)", Sign, Verify, Ignore)
	case !mode.Valid():
		return Rule{}, fmt.Errorf("mode %q is not one of %s, %s, %s", mode, Sign, Verify, Ignore)
	}
	if mode != Verify {
		if len(keys) > 0 {
			return Rule{}, fmt.Errorf("keys are only allowed with mode %s, not %s", Verify, mode)
		}
		if require != "" {
			return Rule{}, fmt.Errorf("require is only allowed with mode %s, not %s", Verify, mode)
		}
		return Rule{Mode: mode}, nil
	}
	switch require {
	case "":
		require = RequireAny
	case RequireAny, RequireAll:
	default:
		return Rule{}, fmt.Errorf("require %q is not one of %s, %s", require, RequireAny, RequireAll)
	}
	if len(keys) == 0 {
		return Rule{}, fmt.Errorf("mode %s needs at least one key", Verify)
	}
	r := Rule{Mode: mode, Require: require}
	ids := map[string]int{}
	for i, s := range keys {
		k, err := ParseKey(s)
		if err != nil {
			return Rule{}, fmt.Errorf("key %d: %w", i+1, err)
		}
		if j, dup := ids[k.ID()]; dup {
			return Rule{}, fmt.Errorf("key %d: same key as key %d", i+1, j)
		}
		ids[k.ID()] = i + 1
		r.Keys = append(r.Keys, k)
	}
	return r, nil
}

// validRepositoryGlob checks a repository glob: path.Match syntax in each
// '/'-separated segment, and "**" only as a whole segment.
func validRepositoryGlob(g string) error {
	if g == "" {
		return errors.New("empty glob")
	}
	for _, seg := range strings.Split(g, "/") {
		if seg == "" {
			return errors.New("empty path segment")
		}
		if seg == "**" {
			continue
		}
		if strings.Contains(seg, "**") {
			return errors.New(`"**" must be a whole path segment`)
		}
		if _, err := path.Match(seg, ""); err != nil {
			return err
		}
	}
	return nil
}

// validTagGlob checks a tag glob: path.Match syntax; tags hold no '/'.
func validTagGlob(g string) error {
	if g == "" {
		return errors.New("empty glob")
	}
	if strings.Contains(g, "/") {
		return errors.New(`tags cannot contain "/"`)
	}
	if _, err := path.Match(g, ""); err != nil {
		return err
	}
	return nil
}

// matchRepository matches a repository name against a validated glob. "*",
// "?" and "[...]" match within one segment (path.Match); a "**" segment
// matches zero or more whole segments, so "mirror/**" matches "mirror",
// "mirror/a" and "mirror/a/b".
func matchRepository(pattern, name string) bool {
	return matchSegments(strings.Split(pattern, "/"), strings.Split(name, "/"))
}

func matchSegments(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			// Collapse runs of "**"; then try every split point.
			for len(pat) > 0 && pat[0] == "**" {
				pat = pat[1:]
			}
			if len(pat) == 0 {
				return true
			}
			for i := 0; i <= len(name); i++ {
				if matchSegments(pat, name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], name[0]); !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}

func matchTag(pattern, tag string) bool {
	ok, _ := path.Match(pattern, tag)
	return ok
}
