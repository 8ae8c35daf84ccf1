package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCDKSynthOffline runs the real CDK CLI from the repository root, as
// `make synth` does, with this test binary as the app (so nothing is
// compiled twice), telemetry and version checks off, no AWS credentials,
// and, where the machine allows it, no network at all.
func TestCDKSynthOffline(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the CDK CLI")
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cdk := filepath.Join(root, "node_modules", ".bin", "cdk")
	if _, err := os.Stat(cdk); err != nil {
		t.Fatalf("CDK CLI not installed (%v): run `npm ci` at the repository root (make tools does)", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	assets := assetDir(t)
	out := t.TempDir()
	none := filepath.Join(t.TempDir(), "none") // AWS config and credentials files that do not exist
	args := []string{cdk, "synth", "--quiet", "--no-notices", "--no-version-reporting",
		"--app", self, "--output", out,
		"-c", "account=" + testAccount, "-c", "region=" + testRegion,
		"-c", "repositories=team/*,base-images", "-c", "signerAssetDir=" + assets}
	// Without a network namespace of its own the run is still offline in
	// practice (no credentials, notices and telemetry off); with one, any
	// attempt to reach the network would fail the synth.
	if exec.Command("unshare", "--net", "true").Run() == nil {
		args = append([]string{"unshare", "--net"}, args...)
	} else {
		t.Log("unshare --net not available; running without a network namespace")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(),
		asAppEnv+"=1",
		"CDK_DISABLE_CLI_TELEMETRY=true",
		"CDK_DISABLE_VERSION_CHECK=true",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE="+none,
		"AWS_SHARED_CREDENTIALS_FILE="+none,
		"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_SESSION_TOKEN=", "AWS_PROFILE=",
	)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("cdk synth: %v\n%s", err, stderr.String())
	}
	t.Logf("cdk synth took %s", time.Since(start).Round(time.Second))
	if strings.Contains(strings.ToLower(stderr.String()), "telemetry") {
		t.Errorf("cdk synth mentioned telemetry:\n%s", stderr.String())
	}

	raw, err := os.ReadFile(filepath.Join(out, "Signet.template.json"))
	if err != nil {
		t.Fatalf("cdk synth wrote no template: %v\n%s", err, stderr.String())
	}
	var tmpl struct {
		Resources map[string]struct{ Type string }
	}
	if err := json.Unmarshal(raw, &tmpl); err != nil {
		t.Fatal(err)
	}
	types := map[string]int{}
	for _, r := range tmpl.Resources {
		types[r.Type]++
	}
	for _, typ := range []string{"AWS::KMS::Key", "AWS::DynamoDB::Table", "AWS::Lambda::Function", "AWS::Events::Rule", "AWS::IAM::Role"} {
		if types[typ] == 0 {
			t.Errorf("CLI-synthesized template has no %s (types: %v)", typ, types)
		}
	}
	// The CLI merges cdk.json's context: its defaults must be ones the app takes.
	if !strings.Contains(string(raw), `"alias/signet"`) {
		t.Errorf("CLI-synthesized template lacks cdk.json's default key alias")
	}
}
