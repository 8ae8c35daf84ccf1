package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

// asAppEnv makes the test binary act as the CDK app, so TestCDKSynthOffline
// can hand it to the CDK CLI as --app without compiling the app again.
const asAppEnv = "SIGNET_INFRA_TEST_AS_APP"

var testTmp string

func TestMain(m *testing.M) {
	if os.Getenv(asAppEnv) == "1" {
		main()
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "signet-infra-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testTmp = dir
	code := m.Run()
	jsii.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Test configurations. fullContext turns on every optional part;
// existingKeyContext brings its own key and alarm topic.
const (
	testAccount = "123456789012"
	testRegion  = "eu-west-1"
	testOIDC    = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/0123456789ABCDEF"
	testKeyArn  = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	testTopic   = "arn:aws:sns:eu-west-1:123456789012:ops-alarms"
	testVerify  = "arn:aws:kms:eu-west-1:210987654321:key/0000aaaa-11bb-22cc-33dd-444444eeeeee"
	testPolicy  = `{"mode": "enforce", "rules": [{"repository": "team/*"}]}`
)

func fullContext(assets string) map[string]interface{} {
	return map[string]interface{}{
		ctxAccount:             testAccount,
		ctxRegion:              testRegion,
		ctxRepositories:        []interface{}{"team/*", "base-images"},
		ctxPolicy:              testPolicy,
		ctxLogLevel:            "debug",
		ctxClusterOIDCProvider: testOIDC,
		ctxAlarmEmail:          "ops@example.com",
		ctxVerifyKeyArns:       []interface{}{testVerify},
		ctxSignerAssetDir:      assets,
	}
}

func existingKeyContext(assets string) map[string]interface{} {
	return map[string]interface{}{
		ctxAccount:             testAccount,
		ctxRegion:              testRegion,
		ctxRepositories:        "base-images",
		ctxKeyArn:              testKeyArn,
		ctxAlarmTopicArn:       testTopic,
		ctxReservedConcurrency: "2",
		ctxSignerAssetDir:      assets,
	}
}

// synthesized is one synthesized stack, shared by the tests that read it.
type synthesized struct {
	cfg         Config
	stack       *Signet
	template    assertions.Template
	json        map[string]interface{}
	annotations assertions.Annotations
}

// resources returns the template's resources of type typ, by logical id.
func (s *synthesized) resources(typ string) map[string]map[string]interface{} {
	out := map[string]map[string]interface{}{}
	for id, r := range s.json["Resources"].(map[string]interface{}) {
		r := r.(map[string]interface{})
		if r["Type"] == typ {
			out[id] = r
		}
	}
	return out
}

// only returns the one resource of type typ.
func (s *synthesized) only(t *testing.T, typ string) (string, map[string]interface{}) {
	t.Helper()
	rs := s.resources(typ)
	if len(rs) != 1 {
		t.Fatalf("template has %d %s, want 1", len(rs), typ)
	}
	for id, r := range rs {
		return id, r
	}
	panic("unreachable")
}

var (
	synthMu   sync.Mutex
	synthDone = map[string]*synthesized{}
)

// synth synthesizes the stack for the named context once per test binary
// (jsii start-up and synthesis take seconds) and returns the shared result.
func synth(t *testing.T, name string, context func(assets string) map[string]interface{}) *synthesized {
	t.Helper()
	synthMu.Lock()
	defer synthMu.Unlock()
	if s, ok := synthDone[name]; ok {
		if s == nil {
			t.Fatalf("synthesizing %s failed in an earlier test", name)
		}
		return s
	}
	synthDone[name] = nil
	dir := filepath.Join(testTmp, name)
	assets := filepath.Join(dir, "signer")
	if err := os.MkdirAll(assets, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(assets, "bootstrap"), []byte("dummy signer for synth tests"), 0o755); err != nil {
		t.Fatal(err)
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	// As the CLI does: cdk.json's context (defaults and feature flags) under
	// the test's values, and each resource's construct path (see logicalID).
	ctx, err := cdkJSONContext(root)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range context(assets) {
		ctx[k] = v
	}
	ctx["aws:cdk:enable-path-metadata"] = true
	app, err := newApp(&awscdk.AppProps{Context: &ctx, Outdir: jsii.String(filepath.Join(dir, "cdk.out"))}, root)
	if err != nil {
		t.Fatalf("newApp(%s) error = %v", name, err)
	}
	tmpl := assertions.Template_FromStack(app.Stack.Stack, nil)
	raw, err := json.Marshal(tmpl.ToJSON())
	if err != nil {
		t.Fatal(err)
	}
	s := &synthesized{
		cfg:         app.Stack.cfg,
		stack:       app.Stack,
		template:    tmpl,
		annotations: assertions.Annotations_FromStack(app.Stack.Stack),
	}
	if err := json.Unmarshal(raw, &s.json); err != nil {
		t.Fatal(err)
	}
	synthDone[name] = s
	return s
}

// cdkJSONContext returns the "context" object of the repository's cdk.json.
func cdkJSONContext(root string) (map[string]interface{}, error) {
	raw, err := os.ReadFile(filepath.Join(root, "cdk.json"))
	if err != nil {
		return nil, err
	}
	var f struct {
		Context map[string]interface{} `json:"context"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("cdk.json: %w", err)
	}
	if f.Context == nil {
		f.Context = map[string]interface{}{}
	}
	return f.Context, nil
}

func full(t *testing.T) *synthesized        { return synth(t, "full", fullContext) }
func existingKey(t *testing.T) *synthesized { return synth(t, "existing-key", existingKeyContext) }

// render turns a CloudFormation value into a string for comparisons:
// intrinsic functions become ${Ref} / ${Id.Attr} and Fn::Join is applied.
func render(v interface{}) string {
	switch v := v.(type) {
	case string:
		return v
	case map[string]interface{}:
		if ref, ok := v["Ref"]; ok {
			return "${" + ref.(string) + "}"
		}
		if ga, ok := v["Fn::GetAtt"].([]interface{}); ok {
			return "${" + ga[0].(string) + "." + ga[1].(string) + "}"
		}
		if j, ok := v["Fn::Join"].([]interface{}); ok {
			var parts []string
			for _, p := range j[1].([]interface{}) {
				parts = append(parts, render(p))
			}
			return strings.Join(parts, j[0].(string))
		}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// strs returns a string or a list of strings as a sorted list of rendered strings.
func strs(v interface{}) []string {
	var out []string
	switch v := v.(type) {
	case nil:
	case []interface{}:
		for _, e := range v {
			out = append(out, render(e))
		}
	default:
		out = append(out, render(v))
	}
	sort.Strings(out)
	return out
}

func sorted(s ...string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// The CDK assertions panic on a mismatch, which would end the whole test
// binary; these wrappers turn the panic into a failure of the one test.

func (s *synthesized) check(t *testing.T, f func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%v", r)
		}
	}()
	f()
}

func (s *synthesized) hasProps(t *testing.T, typ string, props interface{}) {
	t.Helper()
	s.check(t, func() { s.template.HasResourceProperties(jsii.String(typ), props) })
}

func (s *synthesized) hasResource(t *testing.T, typ string, props interface{}) {
	t.Helper()
	s.check(t, func() { s.template.HasResource(jsii.String(typ), props) })
}

func (s *synthesized) allProps(t *testing.T, typ string, props interface{}) {
	t.Helper()
	s.check(t, func() { s.template.AllResourcesProperties(jsii.String(typ), props) })
}

func (s *synthesized) count(t *testing.T, typ string, n int) {
	t.Helper()
	s.check(t, func() { s.template.ResourceCountIs(jsii.String(typ), jsii.Number(float64(n))) })
}
