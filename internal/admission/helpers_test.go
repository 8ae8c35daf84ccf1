package admission_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/signet-dev/signet/internal/admission"
	"github.com/signet-dev/signet/internal/verdict"
)

// The images of testdata/*.json (written by hand in the shape kube-apiserver
// sends, and checked against what it really sent by the e2e test).
const (
	ecr   = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	digA  = "sha256:a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1" // team/api
	digC  = "sha256:c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3" // team/migrate
	digW  = "sha256:b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2" // team/web, signed
	digN  = "sha256:4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e" // nginx
	digP  = "sha256:5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f" // 127.0.0.1:5000/team/web
	digR  = "sha256:d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4" // team/web, rejected
	digD  = "sha256:e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5" // team/web, deleted
	nginx = "index.docker.io/library/nginx"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// record writes verdicts with the store's own Record, as the signer does.
func record(t testing.TB, w verdict.Writer, vs ...verdict.Verdict) {
	t.Helper()
	for _, v := range vs {
		if v.EventTime.IsZero() {
			v.EventTime = t0
		}
		if v.Mode == "" {
			v.Mode = "sign"
		}
		if _, _, err := w.Record(context.Background(), v); err != nil {
			t.Fatalf("Record(%s@%s): %v", v.Repository, v.Digest, err)
		}
	}
}

// seedVerdicts are the verdicts the fixtures are judged against.
func seedVerdicts() []verdict.Verdict {
	return []verdict.Verdict{
		{Repository: ecr + "/team/api", Digest: digA, Outcome: verdict.Rejected, Reason: "policy team-api: signature required from the release key", Mode: "verify"},
		{Repository: ecr + "/team/web", Digest: digW, Outcome: verdict.Signed, Reason: "signed by signet", KeyID: "alias/signet"},
		{Repository: nginx, Digest: digN, Outcome: verdict.Verified, Reason: "verified: signature by the docker-official key", Mode: "verify"},
		{Repository: "127.0.0.1:5000/team/web", Digest: digP, Outcome: verdict.Signed, Reason: "signed by signet"},
		{Repository: ecr + "/team/web", Digest: digR, Outcome: verdict.Rejected, Reason: "critical CVE-2026-0001 in openssl"},
		{Repository: ecr + "/team/web", Digest: digD, Outcome: verdict.Deleted, Reason: "image deleted from the repository", Mode: "delete"},
	}
}

// fixture reads testdata/name, replacing {{REGISTRY}} with registry.
func fixture(t testing.TB, name, registry string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.ReplaceAll(b, []byte("{{REGISTRY}}"), []byte(registry))
}

// serve starts the handler for r on a loopback HTTP server.
func serve(t testing.TB, r admission.Reviewing) string {
	t.Helper()
	s := httptest.NewServer(admission.NewHandler(r))
	t.Cleanup(s.Close)
	return s.URL
}

// post sends body to url and decodes the AdmissionReview that comes back.
func post(t testing.TB, url string, body []byte) *admissionv1.AdmissionResponse {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: status %s", url, resp.Status)
	}
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("decoding response: %v", err)
	}
	if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" || out.Response == nil {
		t.Fatalf("response is not an admission.k8s.io/v1 AdmissionReview: %+v", out)
	}
	var in admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &in); err == nil && in.Request != nil && out.Response.UID != in.Request.UID {
		t.Fatalf("response uid %q, want the request's %q", out.Response.UID, in.Request.UID)
	}
	return out.Response
}

func message(r *admissionv1.AdmissionResponse) string {
	if r.Result == nil {
		return ""
	}
	return r.Result.Message
}

// logLines captures a reviewer's JSON log.
type logLines struct{ bytes.Buffer }

func (l *logLines) entries(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// assertResponse checks allowed, that the deny message holds each of msg,
// and that the warnings (joined) hold each of warn.
func assertResponse(t testing.TB, name string, got *admissionv1.AdmissionResponse, allowed bool, msg, warn []string) {
	t.Helper()
	t.Logf("%s: allowed=%v message=%q warnings=%q", name, got.Allowed, message(got), got.Warnings)
	if got.Allowed != allowed {
		t.Errorf("%s: allowed = %v, want %v (message %q, warnings %q)", name, got.Allowed, allowed, message(got), got.Warnings)
	}
	if !allowed && (got.Result == nil || got.Result.Code != http.StatusForbidden && got.Result.Code != http.StatusBadRequest) {
		t.Errorf("%s: denied with result %+v, want code 403 or 400", name, got.Result)
	}
	for _, m := range msg {
		if !strings.Contains(message(got), m) {
			t.Errorf("%s: message %q does not mention %q", name, message(got), m)
		}
	}
	ws := strings.Join(got.Warnings, "\n")
	for _, w := range warn {
		if !strings.Contains(ws, w) {
			t.Errorf("%s: warnings %q do not mention %q", name, got.Warnings, w)
		}
	}
	if len(warn) == 0 && len(got.Warnings) > 0 {
		t.Errorf("%s: unexpected warnings %q", name, got.Warnings)
	}
}
