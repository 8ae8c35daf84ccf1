package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/signet-dev/signet/internal/admission"
	"github.com/signet-dev/signet/internal/testenv"
	"github.com/signet-dev/signet/internal/verdict"
	"github.com/signet-dev/signet/internal/webhook/webhooktest"
)

// signetBin is the CLI built once for the tests, run as a user would.
var signetBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "signet-cli-")
	if err != nil {
		panic(err)
	}
	signetBin = filepath.Join(dir, "signet")
	out, err := exec.Command("go", "build", "-o", signetBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building signet: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// signet runs the CLI and returns its exit status, stdout and stderr.
func signet(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(signetBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running signet: %v", err)
	}
	return code, stdout.String(), stderr.String()
}

const ecr = "123456789012.dkr.ecr.us-east-1.amazonaws.com"

var (
	digSigned   = "sha256:" + strings.Repeat("b2", 32)
	digRejected = "sha256:" + strings.Repeat("d4", 32)
	digNginx    = "sha256:" + strings.Repeat("4e", 32)
	digNone     = "sha256:" + strings.Repeat("77", 32)
)

func TestVerdictCommand(t *testing.T) {
	testenv.AWSEnv(t)
	d := testenv.StartDynamo(t)
	reg := testenv.Registry(t)
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag(reg + "/team/web:v1")
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	regDigest, _ := img.Digest()
	ctx := context.Background()
	for _, v := range []verdict.Verdict{
		{Repository: ecr + "/team/web", Digest: digSigned, Outcome: verdict.Signed, Reason: "signed by signet"},
		{Repository: ecr + "/team/web", Digest: digRejected, Outcome: verdict.Rejected, Reason: "critical CVE-2026-0001"},
		{Repository: "index.docker.io/library/nginx", Digest: digNginx, Outcome: verdict.Verified, Reason: "verified"},
		{Repository: reg + "/team/web", Digest: regDigest.String(), Outcome: verdict.Signed, Reason: "signed by signet"},
	} {
		v.EventTime = time.Now()
		if _, _, err := d.Store.Record(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	table := "--table=" + d.Table
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		code int
		out  []string
	}{
		{"signed digest", nil, []string{table, ecr + "/team/web@" + digSigned}, 0,
			[]string{"IMAGE", "DECISION", "ALLOW", "SIGNED", ecr + "/team/web", digSigned}},
		{"table from SIGNET_TABLE", []string{"SIGNET_TABLE=" + d.Table}, []string{ecr + "/team/web@" + digSigned}, 0, []string{"ALLOW"}},
		{"nginx is index.docker.io/library/nginx", nil, []string{table, "nginx@" + digNginx}, 0,
			[]string{"index.docker.io/library/nginx", "VERIFIED"}},
		{"tag resolved at the registry", nil, []string{table, reg + "/team/web:v1"}, 0,
			[]string{"ALLOW", regDigest.String(), "deploy it pinned: " + reg + "/team/web:v1@" + regDigest.String()}},
		{"rejected", nil, []string{table, ecr + "/team/web@" + digRejected}, 1, []string{"DENY", "REJECTED", "critical CVE-2026-0001"}},
		{"no verdict", nil, []string{table, ecr + "/team/web@" + digNone}, 1, []string{"DENY", "no signet verdict"}},
		{"one denied of two", nil, []string{table, ecr + "/team/web@" + digSigned, ecr + "/team/web@" + digRejected}, 1, []string{"ALLOW", "DENY"}},
		{"unknown tag", nil, []string{table, reg + "/team/web:nope"}, 2, []string{"ERROR", "tag nope not found"}},
		{"invalid reference", nil, []string{table, "Team/Web"}, 2, []string{"ERROR", "not a valid image reference"}},
		{"no table", nil, []string{ecr + "/team/web@" + digSigned}, 2, nil},
		{"no image", nil, []string{table}, 2, nil},
		{"bad output", nil, []string{table, "-o", "yaml", "nginx"}, 2, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := signet(t, tc.env, append([]string{"verdict"}, tc.args...)...)
			t.Logf("signet verdict %q: exit %d\n%s", tc.args, code, out)
			if code != tc.code {
				t.Fatalf("signet verdict %q = exit %d, want %d\nstdout: %s\nstderr: %s", tc.args, code, tc.code, out, errOut)
			}
			for _, w := range tc.out {
				if !strings.Contains(out, w) {
					t.Errorf("signet verdict %q printed\n%s\nwant it to contain %q", tc.args, out, w)
				}
			}
		})
	}

	t.Run("json", func(t *testing.T) {
		code, out, _ := signet(t, nil, "verdict", table, "-o", "json", reg+"/team/web:v1", ecr+"/team/web@"+digRejected)
		if code != 1 {
			t.Fatalf("exit %d, want 1", code)
		}
		var rep admission.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("-o json printed %q: %v", out, err)
		}
		if rep.Allowed || len(rep.Images) != 2 {
			t.Fatalf("report %+v: want not allowed, two images", rep)
		}
		a, b := rep.Images[0], rep.Images[1]
		if a.Decision != "ALLOW" || a.Digest != regDigest.String() || !a.Resolved || a.Verdict == nil || a.Verdict.Outcome != verdict.Signed ||
			a.Pinned != reg+"/team/web:v1@"+regDigest.String() {
			t.Errorf("first image %+v: want ALLOW, resolved to %s, SIGNED, pinned", a, regDigest)
		}
		if b.Decision != "DENY" || b.Code != admission.CodeDenied || b.Verdict == nil || b.Verdict.Reason != "critical CVE-2026-0001" {
			t.Errorf("second image %+v: want DENY with the REJECTED verdict", b)
		}
	})

	t.Run("store down", func(t *testing.T) {
		d.Stop()
		code, out, _ := signet(t, nil, "verdict", table, "--timeout=10s", ecr+"/team/web@"+digSigned)
		if code != 2 || !strings.Contains(out, "ERROR") || !strings.Contains(out, "could not read the verdict store") {
			t.Fatalf("exit %d, printed %s; want 2 and a store error", code, out)
		}
	})
}

func TestPublicKeyCommand(t *testing.T) {
	testenv.AWSEnv(t)
	k := testenv.StartKMS(t)
	code, out, errOut := signet(t, nil, "public-key", "--key", k.KeyRef)
	if code != 0 || out != string(k.PEM) {
		t.Fatalf("signet public-key --key %s = exit %d, %q (stderr %s), want 0 and\n%s", k.KeyRef, code, out, errOut, k.PEM)
	}
	if code, _, errOut := signet(t, nil, "public-key", "--key", "awskms:///alias/missing"); code != 1 || !strings.Contains(errOut, "alias/missing") {
		t.Errorf("missing key: exit %d, stderr %q; want 1 naming the key", code, errOut)
	}
	if code, _, _ := signet(t, nil, "public-key"); code != 2 {
		t.Errorf("no --key: exit %d, want 2", code)
	}
}

// TestWebhookCommand runs `signet webhook` as a process: it answers an
// admission review over TLS, logs the decision as JSON, serves /metrics,
// and exits 0 on SIGTERM.
func TestWebhookCommand(t *testing.T) {
	testenv.AWSEnv(t)
	d := testenv.StartDynamo(t)
	if _, _, err := d.Store.Record(context.Background(), verdict.Verdict{
		Repository: ecr + "/team/web", Digest: digSigned, Outcome: verdict.Signed, Reason: "signed", EventTime: time.Now()}); err != nil {
		t.Fatal(err)
	}
	ca := webhooktest.NewCA(t)
	certFile, keyFile := ca.Issue(t, t.TempDir(), 1, "127.0.0.1")
	port, mport := testenv.FreePort(t), testenv.FreePort(t)

	if code, _, errOut := signet(t, nil, "webhook", "--table", d.Table, "--mode", "loud"); code != 2 || !strings.Contains(errOut, `mode "loud"`) {
		t.Errorf("bad --mode: exit %d, stderr %q; want 2", code, errOut)
	}

	cmd := exec.Command(signetBin, "webhook", "--table", d.Table, "--tls-cert", certFile, "--tls-key", keyFile,
		fmt.Sprintf("--listen=127.0.0.1:%d", port), fmt.Sprintf("--metrics-listen=127.0.0.1:%d", mport), "--drain=0s")
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	testenv.WaitTCP(t, fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second)

	review := fmt.Sprintf(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"cli-1",
		"kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},
		"namespace":"team-a","operation":"CREATE","userInfo":{"username":"alice"},
		"object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"team-a"},
		"spec":{"containers":[{"name":"app","image":"%s/team/web@%s"}]}}}}`, ecr, digSigned)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	resp, err := client.Post(fmt.Sprintf("https://127.0.0.1:%d/validate", port), "application/json", strings.NewReader(review))
	if err != nil {
		t.Fatal(err)
	}
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if out.Response == nil || !out.Response.Allowed || out.Response.UID != "cli-1" {
		t.Fatalf("response %+v, want allowed with uid cli-1", out.Response)
	}
	mresp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", mport))
	if err != nil {
		t.Fatal(err)
	}
	var mb bytes.Buffer
	_, _ = mb.ReadFrom(mresp.Body)
	mresp.Body.Close()
	if !strings.Contains(mb.String(), `signet_admission_decisions_total{result="allowed"} 1`) || !strings.Contains(mb.String(), "go_goroutines") {
		t.Errorf("/metrics lacks the decision counter or Go metrics")
	}

	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("signet webhook after SIGTERM: %v, want exit 0\n%s", err, logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("signet webhook did not stop on SIGTERM")
	}
	var sawDecision bool
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q is not JSON", line)
		}
		if m["msg"] == "admission decision" && m["decision"] == "allowed" && m["user"] == "alice" {
			sawDecision = true
		}
	}
	if !sawDecision {
		t.Errorf("no JSON decision log line for the review:\n%s", logs.String())
	}
}
