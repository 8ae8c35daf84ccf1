package policy_test

import (
	"errors"
	"testing"

	"github.com/signet-dev/signet/internal/policy"
)

// FuzzParse checks that Parse never panics, that every error it returns is
// an ErrInvalid, and that a policy it accepts matches any name to a rule with
// a valid mode (and keys exactly when the mode is verify). The seeds run as
// part of `go test`.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"",
		"rules: []",
		"default:\n  mode: ignore\n",
		`{"rules":[{"name":"a","repositories":["team/*"],"tags":["v*"],"mode":"sign"}]}`,
		`{"rules":[{"name":"a","repositories":["**/x/**"],"mode":"verify","require":"all","keys":["awskms:///alias/k"]}]}`,
		`{"rules":[{"name":"a","repositories":["[a-"],"mode":"sign"}]}`,
		`{"rules":[{"name":"a","repositories":["a"],"mode":"verify","keys":["-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n"]}]}`,
		"rules:\n  - name: x\n    repositories: [\"a/**\"]\n    mode: ignore\n---\nrules: []\n",
		"rules: &a [*a]",
		"default: {mode: verify, keys: [awskms:///arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab]}",
	} {
		f.Add([]byte(seed), "team/api", "v1")
	}
	f.Fuzz(func(t *testing.T, data []byte, repo, tag string) {
		p, err := policy.Parse(data)
		if err != nil {
			if !errors.Is(err, policy.ErrInvalid) {
				t.Fatalf("Parse(%q) = %v, want an error that Is ErrInvalid", data, err)
			}
			return
		}
		r := p.Match(repo, tag)
		if !r.Mode.Valid() || r.Name == "" {
			t.Fatalf("Parse(%q).Match(%q, %q) = %+v, want a named rule with a valid mode", data, repo, tag, r)
		}
		if (r.Mode == policy.Verify) != (len(r.Keys) > 0) {
			t.Fatalf("Parse(%q).Match(%q, %q) = mode %s with %d keys", data, repo, tag, r.Mode, len(r.Keys))
		}
	})
}
