package policy_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/signet-dev/signet/internal/policy"
)

// pemKey returns a fresh P-256 public key as PEM, and its expected key id.
func pemKey(t testing.TB) (string, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return marshalPub(t, &k.PublicKey)
}

func marshalPub(t testing.TB, pub any) (string, string) {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), "sha256:" + hex.EncodeToString(sum[:])
}

// indent prefixes every line of s with n spaces, to embed PEM in YAML.
func indent(s string, n int) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n"+pad)
}

func TestParseExample(t *testing.T) {
	pub, pubID := pemKey(t)
	doc := `
rules:
  - name: vendor-images
    repositories: ["vendor/*", "mirror/**"]
    mode: verify
    require: any
    keys:
      - awskms:///alias/vendor-signing
      - |
` + indent(pub, 8) + `
  - name: sandbox
    repositories: ["sandbox/**"]
    mode: ignore
  - name: releases
    repositories: ["team/*"]
    tags: ["v*", "release-*"]
    mode: sign
  - name: team-verify
    repositories: ["team/*"]
    mode: verify
    require: all
    keys: ["awskms:///arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"]
default:
  mode: ignore
`
	p, err := policy.Parse([]byte(doc))
	if err != nil {
		t.Fatalf("Parse(example) = %v, want nil", err)
	}
	rules := p.Rules()
	if len(rules) != 4 {
		t.Fatalf("Parse(example) has %d rules, want 4", len(rules))
	}
	v := rules[0]
	if v.Mode != policy.Verify || v.Require != policy.RequireAny || v.RequireAll() {
		t.Errorf("rule vendor-images = mode %s require %s, want verify any", v.Mode, v.Require)
	}
	wantIDs := []string{"awskms:///alias/vendor-signing", pubID}
	if len(v.Keys) != len(wantIDs) {
		t.Fatalf("rule vendor-images has %d keys, want %d", len(v.Keys), len(wantIDs))
	}
	for i, k := range v.Keys {
		if k.ID() != wantIDs[i] {
			t.Errorf("rule vendor-images key %d ID() = %q, want %q", i+1, k.ID(), wantIDs[i])
		}
	}
	if _, ok := v.Keys[0].(*policy.KMSKey); !ok {
		t.Errorf("key 1 is a %T, want *policy.KMSKey", v.Keys[0])
	}
	if _, err := v.Keys[1].Verifier(context.Background()); err != nil {
		t.Errorf("PEM key Verifier() = %v, want nil", err)
	}
	if !rules[3].RequireAll() {
		t.Errorf("rule team-verify RequireAll() = false, want true")
	}
	if d := p.DefaultRule(); d.Mode != policy.Ignore || d.Name != "default" || !d.Default {
		t.Errorf("DefaultRule() = %+v, want mode ignore named default", d)
	}
}

func TestMatch(t *testing.T) {
	p, err := policy.Parse([]byte(`{
  "rules": [
    {"name": "exact", "repositories": ["team/api"], "mode": "ignore"},
    {"name": "releases", "repositories": ["team/*"], "tags": ["v*", "release-*"], "mode": "sign"},
    {"name": "team", "repositories": ["team/*"], "mode": "verify", "keys": ["awskms:///alias/team"]},
    {"name": "mirror", "repositories": ["mirror/**"], "mode": "verify", "keys": ["awskms:///alias/mirror"]},
    {"name": "deep", "repositories": ["**/cache/*-tmp"], "mode": "ignore"},
    {"name": "middle", "repositories": ["a/**/z"], "mode": "ignore"},
    {"name": "class", "repositories": ["svc-[0-9]"], "mode": "ignore"}
  ],
  "default": {"mode": "sign", "name": "fallback"}
}`))
	if err != nil {
		t.Fatalf("Parse = %v", err)
	}
	tests := []struct {
		repo, tag, want string
	}{
		{"team/api", "v1", "exact"}, // first match wins
		{"team/web", "v1.2.3", "releases"},
		{"team/web", "release-7", "releases"},
		{"team/web", "latest", "team"},
		{"team/web", "", "team"},           // no tag: only rules without tag globs
		{"team/web/sub", "v1", "fallback"}, // "*" stays within a segment
		{"team", "v1", "fallback"},
		{"mirror", "", "mirror"}, // "**" matches zero segments
		{"mirror/a", "", "mirror"},
		{"mirror/a/b/c", "x", "mirror"},
		{"mirrors/a", "", "fallback"},
		{"x/y/cache/go-tmp", "", "deep"},
		{"cache/go-tmp", "", "deep"},
		{"cache/go-tmp/x", "", "fallback"},
		{"a/z", "", "middle"},
		{"a/b/c/z", "", "middle"},
		{"a/b/c", "", "fallback"},
		{"svc-1", "", "class"},
		{"svc-a", "", "fallback"},
		{"", "", "fallback"},
	}
	for _, tc := range tests {
		if got := p.Match(tc.repo, tc.tag); got.Name != tc.want {
			t.Errorf("Match(%q, %q) = rule %q, want %q", tc.repo, tc.tag, got.Name, tc.want)
		}
	}
}

func TestDefault(t *testing.T) {
	r := policy.Default().Match("any/repo", "v1")
	if r.Mode != policy.Sign || !r.Default || r.Name != policy.DefaultRuleName {
		t.Errorf("Default().Match(%q, %q) = %+v, want the default sign rule", "any/repo", "v1", r)
	}
	p, err := policy.Parse([]byte(`rules: []`))
	if err != nil {
		t.Fatalf("Parse(%q) = %v, want nil", "rules: []", err)
	}
	if r := p.Match("x", ""); r.Mode != policy.Sign {
		t.Errorf("Parse(%q).Match = mode %s, want sign", "rules: []", r.Mode)
	}
	p, err = policy.Parse([]byte(`{"default": {"mode": "verify", "require": "all", "keys": ["awskms:///alias/a", "awskms:///alias/b"]}}`))
	if err != nil {
		t.Fatalf("Parse(verify default) = %v, want nil", err)
	}
	if r := p.Match("x", ""); r.Mode != policy.Verify || !r.RequireAll() || len(r.Keys) != 2 {
		t.Errorf("Parse(verify default).Match = %+v, want verify all with 2 keys", r)
	}
}

func TestParseErrors(t *testing.T) {
	pub, _ := pemKey(t)
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	privDER, _ := x509.MarshalPKCS8PrivateKey(priv)
	privPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}))
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	weakPEM, _ := marshalPub(t, &weak.PublicKey)
	q := func(s string) string { // a JSON string
		return `"` + strings.ReplaceAll(s, "\n", `\n`) + `"`
	}
	verify := func(keys ...string) string {
		return `{"rules":[{"name":"vendor-images","repositories":["vendor/*"],"mode":"verify","keys":[` + strings.Join(keys, ",") + `]}]}`
	}
	tests := []struct {
		name, doc, want string
	}{
		{"empty document", "  \n", "the document is empty"},
		{"not yaml", "rules: [", "invalid policy"},
		{"unknown top-level field", `{"rules":[],"defaults":{}}`, `unknown field "defaults"`},
		{"unknown rule field", `{"rules":[{"name":"r1","repositories":["a"],"mode":"sign","tag":["v1"]}]}`, `rule "r1": json: unknown field "tag"`},
		{"unknown default field", `{"default":{"mode":"sign","repositories":["a"]}}`, `rule "default": json: unknown field "repositories"`},
		{"duplicate yaml key", "rules: []\nrules: []\n", `invalid policy`},
		{"missing name", `{"rules":[{"repositories":["a"],"mode":"sign"}]}`, `rule "#1": name is required`},
		{"duplicate name", `{"rules":[{"name":"r","repositories":["a"],"mode":"sign"},{"name":"r","repositories":["b"],"mode":"sign"}]}`, `rule "r": name is used by an earlier rule`},
		{"default name taken", `{"rules":[{"name":"default","repositories":["a"],"mode":"sign"}],"default":{"mode":"sign"}}`, `rule "default": name is that of the default rule`},
		{"implicit default name taken", `{"rules":[{"name":"default","repositories":["a"],"mode":"sign"}]}`, `rule "default": name is that of the default rule`},
		{"renamed default name taken", `{"rules":[{"name":"r","repositories":["a"],"mode":"sign"}],"default":{"name":"r","mode":"ignore"}}`, `rule "r": name is that of the default rule`},
		{"missing mode", `{"rules":[{"name":"r","repositories":["a"]}]}`, `rule "r": mode is required`},
		{"bad mode", `{"rules":[{"name":"r","repositories":["a"],"mode":"Sign"}]}`, `rule "r": mode "Sign" is not one of sign, verify, ignore`},
		{"bad default mode", `{"default":{"mode":"deny"}}`, `rule "default": mode "deny" is not one of`},
		{"no repositories", `{"rules":[{"name":"r","mode":"sign"}]}`, `rule "r": repositories: at least one glob is required`},
		{"empty repositories", `{"rules":[{"name":"r","repositories":[],"mode":"sign"}]}`, `rule "r": repositories: at least one glob is required`},
		{"repositories not a list", `{"rules":[{"name":"r","repositories":"a/*","mode":"sign"}]}`, `rule "r": json: cannot unmarshal string`},
		{"empty glob", `{"rules":[{"name":"r","repositories":[""],"mode":"sign"}]}`, `rule "r": repositories: glob 1 "": empty glob`},
		{"bad glob", `{"rules":[{"name":"r","repositories":["a","team/[z-"],"mode":"sign"}]}`, `rule "r": repositories: glob 2 "team/[z-": syntax error in pattern`},
		{"partial double star", `{"rules":[{"name":"r","repositories":["team/**x"],"mode":"sign"}]}`, `rule "r": repositories: glob 1 "team/**x": "**" must be a whole path segment`},
		{"empty segment", `{"rules":[{"name":"r","repositories":["team//x"],"mode":"sign"}]}`, `rule "r": repositories: glob 1 "team//x": empty path segment`},
		{"leading slash", `{"rules":[{"name":"r","repositories":["/team"],"mode":"sign"}]}`, `empty path segment`},
		{"bad tag glob", `{"rules":[{"name":"r","repositories":["a"],"tags":["v[1"],"mode":"sign"}]}`, `rule "r": tags: glob 1 "v[1": syntax error in pattern`},
		{"empty tag glob", `{"rules":[{"name":"r","repositories":["a"],"tags":[""],"mode":"sign"}]}`, `rule "r": tags: glob 1 "": empty glob`},
		{"slash in tag glob", `{"rules":[{"name":"r","repositories":["a"],"tags":["a/b"],"mode":"sign"}]}`, `rule "r": tags: glob 1 "a/b": tags cannot contain "/"`},
		{"verify without keys", `{"rules":[{"name":"r","repositories":["a"],"mode":"verify"}]}`, `rule "r": mode verify needs at least one key`},
		{"default verify without keys", `{"default":{"mode":"verify"}}`, `rule "default": mode verify needs at least one key`},
		{"keys on sign rule", `{"rules":[{"name":"r","repositories":["a"],"mode":"sign","keys":["awskms:///alias/a"]}]}`, `rule "r": keys are only allowed with mode verify, not sign`},
		{"keys on ignore default", `{"default":{"mode":"ignore","keys":["awskms:///alias/a"]}}`, `rule "default": keys are only allowed with mode verify, not ignore`},
		{"require on sign rule", `{"rules":[{"name":"r","repositories":["a"],"mode":"sign","require":"all"}]}`, `rule "r": require is only allowed with mode verify`},
		{"bad require", `{"rules":[{"name":"r","repositories":["a"],"mode":"verify","require":"both","keys":["awskms:///alias/a"]}]}`, `rule "r": require "both" is not one of any, all`},
		{"key not PEM", verify(`"awskms:///alias/a"`, `"hello"`), `rule "vendor-images": key 2: not a PEM public key`},
		{"key PEM garbage", verify(q("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")), `rule "vendor-images": key 1: not a PEM public key`},
		{"key private", verify(q(privPEM)), `rule "vendor-images": key 1: not a PEM public key: unknown Public key PEM file type: PRIVATE KEY`},
		{"key two blocks", verify(q(pub + pub)), `rule "vendor-images": key 1: more than one PEM block`},
		{"key text before PEM", verify(q("my key:\n" + pub)), `rule "vendor-images": key 1: not a PEM public key`},
		{"key weak RSA", verify(q(weakPEM)), `rule "vendor-images": key 1: unsupported public key: rsa key size 1024`},
		{"duplicate key", verify(q(pub), `"awskms:///alias/a"`, q(pub)), `rule "vendor-images": key 3: same key as key 1`},
		{"bad KMS ref", verify(`"awskms://alias/a"`), `rule "vendor-images": key 1: bad KMS key reference "awskms://alias/a"`},
		{"empty KMS alias", verify(`"awskms:///alias/"`), `rule "vendor-images": key 1: bad KMS key reference "awskms:///alias/"`},
		{"KMS alias with space", verify(`"awskms:///alias/a b"`), `rule "vendor-images": key 1: bad KMS key reference`},
		{"bad KMS ARN", verify(`"awskms:///arn:aws:kms:eu-west-1:1234:key/abc"`), `rule "vendor-images": key 1: bad KMS key reference`},
		{"other KMS", verify(`"gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k"`), `rule "vendor-images": key 1: "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k" is not an awskms:// key reference`},
		{"key not a string", verify(`42`), `rule "vendor-images": json: cannot unmarshal number`},
		{"trailing json", `{"rules":[]} {}`, `invalid policy`},
		{"two yaml documents", "rules: []\n---\nrules: []\n", `more than one YAML document`},
		{"not a mapping", "- name: r\n", `the document is not a mapping`},
		{"null", "null", `the document is not a mapping`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := policy.Parse([]byte(tc.doc))
			if err == nil {
				t.Fatalf("Parse(%q) = %v, nil; want error containing %q", tc.doc, p, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(%q) = %v, want error containing %q", tc.doc, err, tc.want)
			}
			if !errors.Is(err, policy.ErrInvalid) {
				t.Errorf("Parse(%q) = %v, want an error that Is ErrInvalid", tc.doc, err)
			}
		})
	}
}

func TestParseKeyTypes(t *testing.T) {
	ed, _, _ := ed25519.GenerateKey(rand.Reader)
	edPEM, edID := marshalPub(t, ed)
	r, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM, rsaID := marshalPub(t, &r.PublicKey)
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&r.PublicKey)}))
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384PEM, p384ID := marshalPub(t, &p384.PublicKey)
	tests := []struct {
		name, key, wantID string
	}{
		{"ed25519", edPEM, edID},
		{"rsa pkix", rsaPEM, rsaID},
		{"rsa pkcs1", pkcs1, rsaID}, // the id is of the PKIX DER, whatever the PEM type
		{"p384 with blank lines", "\n\n" + p384PEM + "\n\n", p384ID},
		{"kms alias", "awskms:///alias/team/signing_key-1", "awskms:///alias/team/signing_key-1"},
		{"kms key id", "awskms:///1234abcd-12ab-34cd-56ef-1234567890ab", "awskms:///1234abcd-12ab-34cd-56ef-1234567890ab"},
		{"kms alias arn", "awskms:///arn:aws:kms:us-east-1:123456789012:alias/x", "awskms:///arn:aws:kms:us-east-1:123456789012:alias/x"},
		{"kms with endpoint", "awskms://localhost:4566/alias/x", "awskms://localhost:4566/alias/x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, err := policy.ParseKey(tc.key)
			if err != nil {
				t.Fatalf("ParseKey(%q) = %v, want nil", tc.key, err)
			}
			if k.ID() != tc.wantID {
				t.Errorf("ParseKey(%q).ID() = %q, want %q", tc.key, k.ID(), tc.wantID)
			}
		})
	}
}
