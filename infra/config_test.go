package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// mapContext is a Context backed by a map, as the CDK app sees cdk.json and
// -c values.
type mapContext map[string]interface{}

func (m mapContext) TryGetContext(key *string) interface{} { return m[*key] }

// assetDir returns a folder holding a dummy signer binary.
func assetDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bootstrap"), []byte("not a real binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestConfigFromContext(t *testing.T) {
	t.Setenv("CDK_DEFAULT_ACCOUNT", "")
	t.Setenv("CDK_DEFAULT_REGION", "")
	assets := assetDir(t)
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "policy.json"), []byte("{\n  \"mode\": \"enforce\"\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := func(kv ...interface{}) mapContext {
		m := mapContext{ctxSignerAssetDir: assets, ctxRepositories: "team/*"}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	tests := []struct {
		name    string
		ctx     mapContext
		check   func(t *testing.T, cfg Config)
		wantErr string // substring; empty means no error
	}{
		{
			name: "defaults",
			ctx:  base(),
			check: func(t *testing.T, cfg Config) {
				want := Config{
					StackName: "Signet", KeyAlias: "alias/signet", LogLevel: "info",
					ReservedConcurrency: 5, Repositories: []string{"team/*"},
					WebhookNamespace: "signet-system", WebhookServiceAccount: "signet-webhook",
					PodIdentity: true, SignerAssetDir: assets,
				}
				if !reflect.DeepEqual(cfg, want) {
					t.Errorf("configFromContext(defaults) = %+v, want %+v", cfg, want)
				}
			},
		},
		{
			name: "cdk.json types",
			ctx: base(ctxRepositories, []interface{}{"team/*", "base-images"}, ctxReservedConcurrency, float64(8),
				ctxPodIdentity, false, ctxClusterOIDCProvider, "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/AB12"),
			check: func(t *testing.T, cfg Config) {
				if got := cfg.Repositories; !reflect.DeepEqual(got, []string{"team/*", "base-images"}) {
					t.Errorf("Repositories = %q, want [team/* base-images]", got)
				}
				if cfg.ReservedConcurrency != 8 || cfg.PodIdentity {
					t.Errorf("ReservedConcurrency, PodIdentity = %d, %v, want 8, false", cfg.ReservedConcurrency, cfg.PodIdentity)
				}
			},
		},
		{
			name: "-c string forms",
			ctx:  base(ctxRepositories, " team/* , base-images ,", ctxReservedConcurrency, "3", ctxPodIdentity, "true", ctxRepositoryPrefixes, `["team/api"]`),
			check: func(t *testing.T, cfg Config) {
				if got := cfg.Repositories; !reflect.DeepEqual(got, []string{"team/*", "base-images"}) {
					t.Errorf("Repositories = %q, want [team/* base-images]", got)
				}
				if got := cfg.RepositoryPrefixes; !reflect.DeepEqual(got, []string{"team/api"}) {
					t.Errorf("RepositoryPrefixes = %q, want [team/api]", got)
				}
				if cfg.ReservedConcurrency != 3 {
					t.Errorf("ReservedConcurrency = %d, want 3", cfg.ReservedConcurrency)
				}
			},
		},
		{
			name: "prefixes alone set the repositories",
			ctx:  base(ctxRepositories, nil, ctxRepositoryPrefixes, []interface{}{"team/", "base"}),
			check: func(t *testing.T, cfg Config) {
				if got := cfg.Repositories; !reflect.DeepEqual(got, []string{"team/*", "base*"}) {
					t.Errorf("Repositories = %q, want [team/* base*]", got)
				}
			},
		},
		{
			name: "policy file is compacted",
			ctx:  base(ctxPolicyFile, "policy.json"),
			check: func(t *testing.T, cfg Config) {
				if cfg.Policy != `{"mode":"enforce"}` {
					t.Errorf("Policy = %q, want {\"mode\":\"enforce\"}", cfg.Policy)
				}
			},
		},
		{
			name: "YAML policy becomes JSON",
			ctx:  base(ctxPolicy, "---\nmode: verify\nrules:\n  - repository: team/*\n"),
			check: func(t *testing.T, cfg Config) {
				if want := `{"mode":"verify","rules":[{"repository":"team/*"}]}`; cfg.Policy != want {
					t.Errorf("Policy = %q, want %q", cfg.Policy, want)
				}
			},
		},
		{
			name: "account from the CLI environment",
			ctx:  base(ctxAccount, "123456789012", ctxRegion, "eu-central-1"),
			check: func(t *testing.T, cfg Config) {
				if cfg.Account != "123456789012" || cfg.Region != "eu-central-1" {
					t.Errorf("Account, Region = %q, %q", cfg.Account, cfg.Region)
				}
			},
		},
		{name: "no repositories", ctx: base(ctxRepositories, nil), wantErr: "context repositories is required"},
		{name: "bad repository", ctx: base(ctxRepositories, "Team/API"), wantErr: "neither an ECR repository name nor a prefix"},
		{name: "star in the middle", ctx: base(ctxRepositories, "team/*/api"), wantErr: "neither an ECR repository name nor a prefix"},
		{name: "prefix outside repositories", ctx: base(ctxRepositoryPrefixes, "other/"), wantErr: `starting with "other/"`},
		{name: "no signer binary", ctx: base(ctxSignerAssetDir, t.TempDir()), wantErr: "run `make lambda`"},
		{name: "relative missing asset dir", ctx: base(ctxSignerAssetDir, nil), wantErr: "run `make lambda`"},
		{name: "concurrency zero", ctx: base(ctxReservedConcurrency, float64(0)), wantErr: "outside 1..100"},
		{name: "concurrency not a number", ctx: base(ctxReservedConcurrency, "five"), wantErr: "is not an integer"},
		{name: "policy not JSON", ctx: base(ctxPolicy, "{mode: enforce"), wantErr: "neither JSON nor YAML"},
		{name: "policy not an object", ctx: base(ctxPolicy, `["x"]`), wantErr: "must be a JSON or YAML object"},
		{name: "policy duplicate key", ctx: base(ctxPolicy, "mode: a\nmode: b\n"), wantErr: "neither JSON nor YAML"},
		{name: "policy two documents", ctx: base(ctxPolicy, "mode: a\n---\nmode: b\n"), wantErr: "2 YAML documents"},
		{name: "policy too big", ctx: base(ctxPolicy, `{"x":"`+strings.Repeat("a", maxPolicyBytes)+`"}`), wantErr: "fit in the Lambda environment"},
		{name: "policy twice", ctx: base(ctxPolicy, "{}", ctxPolicyFile, "policy.json"), wantErr: "set one, not both"},
		{name: "bad key ARN", ctx: base(ctxKeyArn, "alias/signet"), wantErr: "is not a KMS key ARN"},
		{name: "verify key alias", ctx: base(ctxVerifyKeyArns, "alias/vendor"), wantErr: "IAM cannot match aliases"},
		{name: "AWS alias", ctx: base(ctxKeyAlias, "alias/aws/signet"), wantErr: "not alias/aws/"},
		{name: "bad log level", ctx: base(ctxLogLevel, "loud"), wantErr: "is not one of debug, info, warn, error"},
		{name: "bad service account", ctx: base(ctxWebhookServiceAccount, "signet-webhook"), wantErr: "is not NAMESPACE/NAME"},
		{name: "bad OIDC provider", ctx: base(ctxClusterOIDCProvider, "oidc.eks.us-east-1.amazonaws.com/id/X"), wantErr: "is not an IAM OIDC provider ARN"},
		{name: "no webhook trust", ctx: base(ctxPodIdentity, false), wantErr: "nothing could assume the webhook role"},
		{name: "two alarm targets", ctx: base(ctxAlarmEmail, "ops@example.com", ctxAlarmTopicArn, "arn:aws:sns:us-east-1:123456789012:ops"), wantErr: "set one, not both"},
		{name: "bad account", ctx: base(ctxAccount, "12345", ctxRegion, "us-east-1"), wantErr: "12-digit"},
		{name: "list of numbers", ctx: base(ctxRepositories, []interface{}{float64(1)}), wantErr: "is not a string in a list"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := configFromContext(tc.ctx, root)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("configFromContext() error = %v, want none", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("configFromContext() error = %v, want one containing %q", err, tc.wantErr)
			}
			if tc.check != nil {
				tc.check(t, cfg)
			}
		})
	}
}

func TestRepositoryFilter(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		filter []interface{}
	}{
		{"names and prefixes", Config{Repositories: []string{"team/*", "base"}},
			[]interface{}{map[string]interface{}{"prefix": "team/"}, "base"}},
		{"every repository", Config{Repositories: []string{"team/*", "*"}}, nil},
		{"explicit prefixes win", Config{Repositories: []string{"*"}, RepositoryPrefixes: []string{"team/api"}},
			[]interface{}{map[string]interface{}{"prefix": "team/api"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.cfg.RepositoryFilter(); !reflect.DeepEqual(got, tc.filter) {
				t.Errorf("RepositoryFilter(%q, %q) = %v, want %v", tc.cfg.Repositories, tc.cfg.RepositoryPrefixes, got, tc.filter)
			}
		})
	}
}
