package webhook_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/signet-dev/signet/internal/admission"
	"github.com/signet-dev/signet/internal/testenv"
	"github.com/signet-dev/signet/internal/verdict"
	"github.com/signet-dev/signet/internal/webhook"
	"github.com/signet-dev/signet/internal/webhook/webhooktest"
)

const (
	ecr    = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	signed = "sha256:b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2"
)

type running struct {
	url, metrics string
	client       *http.Client
	cancel       context.CancelFunc
	done         chan error
}

// start runs a webhook server on loopback with a certificate for 127.0.0.1
// in dir, reading verdicts from r.
func start(t *testing.T, r verdict.Reader, ca *webhooktest.CA, dir string) *running {
	t.Helper()
	certFile, keyFile := ca.Issue(t, dir, 1, "127.0.0.1")
	certs, err := webhook.NewCertReloader(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m := admission.NewMetrics(reg)
	rv, err := admission.NewReviewer(admission.Config{Timeout: 2 * time.Second},
		admission.NewChecker(r, admission.WithCache(100, time.Minute, time.Second), admission.WithMetrics(m)),
		admission.WithReviewMetrics(m))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := webhook.New(certs, admission.NewHandler(rv), reg, webhook.WithDrain(0))
	run := &running{
		url:     "https://" + ln.Addr().String(),
		metrics: "http://" + mln.Addr().String(),
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, DisableKeepAlives: true}},
		cancel: cancel,
		done:   make(chan error, 1),
	}
	go func() { run.done <- s.Serve(ctx, ln, mln) }()
	t.Cleanup(func() { cancel(); <-run.done })
	return run
}

func podReview(uid, image string) []byte {
	b, _ := json.Marshal(map[string]any{
		"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
		"request": map[string]any{
			"uid": uid, "kind": map[string]string{"version": "v1", "kind": "Pod"},
			"resource":  map[string]string{"version": "v1", "resource": "pods"},
			"namespace": "team-a", "operation": "CREATE",
			"object": map[string]any{"apiVersion": "v1", "kind": "Pod",
				"metadata": map[string]any{"name": "p", "namespace": "team-a"},
				"spec":     map[string]any{"containers": []any{map[string]string{"name": "app", "image": image}}}},
		},
	})
	return b
}

func (r *running) review(t *testing.T, uid, image string) *admissionv1.AdmissionResponse {
	t.Helper()
	resp, err := r.client.Post(r.url+webhook.ValidatePath, "application/json", bytes.NewReader(podReview(uid, image)))
	if err != nil {
		t.Fatalf("POST %s: %v", webhook.ValidatePath, err)
	}
	defer resp.Body.Close()
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Response == nil {
		t.Fatalf("decoding review: %v", err)
	}
	if string(out.Response.UID) != uid {
		t.Fatalf("uid %q, want %q", out.Response.UID, uid)
	}
	return out.Response
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServer runs the server against dynalite and checks, over the network,
// admission over HTTPS, the probes, and the metrics after allowed, denied and
// failed look-ups; then that it stops when told.
func TestServer(t *testing.T) {
	testenv.AWSEnv(t)
	d := testenv.StartDynamo(t)
	if _, _, err := d.Store.Record(context.Background(), verdict.Verdict{
		Repository: ecr + "/team/web", Digest: signed, Outcome: verdict.Signed, Reason: "signed by signet", EventTime: time.Now(),
	}); err != nil {
		t.Fatal(err)
	}
	ca := webhooktest.NewCA(t)
	r := start(t, d.Store, ca, t.TempDir())

	if got := r.review(t, "u1", ecr+"/team/web@"+signed); !got.Allowed {
		t.Errorf("signed image denied: %+v", got.Result)
	}
	if got := r.review(t, "u2", ecr+"/team/web@"+signed); !got.Allowed { // from the cache
		t.Errorf("signed image denied on second look: %+v", got.Result)
	}
	if got := r.review(t, "u3", ecr+"/team/web:v1"); got.Allowed || !strings.Contains(got.Result.Message, "not pinned by digest") {
		t.Errorf("tag-only image: %+v, want denied as not pinned", got.Result)
	}
	d.Stop()
	other := "sha256:" + strings.Repeat("0f", 32)
	if got := r.review(t, "u4", ecr+"/team/web@"+other); got.Allowed || !strings.Contains(got.Result.Message, "fails closed") {
		t.Errorf("store down: %+v, want denied, failing closed", got.Result)
	}

	for _, p := range []string{webhook.HealthPath, webhook.ReadyPath} {
		if code, body := get(t, r.metrics+p); code != 200 {
			t.Errorf("GET %s = %d %q, want 200", p, code, body)
		}
	}
	code, metrics := get(t, r.metrics+webhook.MetricsPath)
	if code != 200 {
		t.Fatalf("GET /metrics = %d", code)
	}
	for _, want := range []string{
		`signet_admission_decisions_total{result="allowed"} 2`,
		`signet_admission_decisions_total{result="denied"} 2`,
		`signet_admission_duration_seconds_count 4`,
		`signet_verdict_cache_requests_total{result="hit"} 1`,
		`signet_verdict_cache_requests_total{result="miss"} 2`,
		`signet_verdict_store_errors_total 1`,
	} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// The metrics port is plain HTTP and does not serve admission reviews.
	if code, _ := get(t, r.metrics+webhook.ValidatePath); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
		t.Errorf("GET %s on the metrics port = %d, want 404 or 405", webhook.ValidatePath, code)
	}

	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Serve returned %v after cancel, want nil", err)
		}
		r.done <- err
	case <-time.After(15 * time.Second):
		t.Fatal("server did not stop")
	}
	if code, _ := get(t, r.metrics+webhook.ReadyPath); code == 200 {
		t.Errorf("readyz still 200 after stop")
	}
}

// TestCertReload renews the certificate on disk and checks that new
// connections get it, and that a broken renewal keeps the last good one.
func TestCertReload(t *testing.T) {
	ca := webhooktest.NewCA(t)
	dir := t.TempDir()
	r := start(t, noVerdicts{}, ca, dir)

	serial := func() string {
		t.Helper()
		conn, err := tls.Dial("tcp", strings.TrimPrefix(r.url, "https://"), &tls.Config{RootCAs: ca.Pool()})
		if err != nil {
			t.Fatalf("TLS handshake: %v", err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	if got := serial(); got != "1" {
		t.Fatalf("serial = %s, want 1", got)
	}
	certFile, keyFile := ca.Issue(t, dir, 2, "127.0.0.1")
	future := time.Now().Add(time.Minute) // make sure the mtime moves
	_ = os.Chtimes(certFile, future, future)
	_ = os.Chtimes(keyFile, future, future)
	time.Sleep(1100 * time.Millisecond)
	if got := serial(); got != "2" {
		t.Fatalf("serial after renewal = %s, want 2", got)
	}

	// A half-written renewal: the old certificate is kept and readyz says why.
	if err := os.WriteFile(certFile, []byte("-----BEGIN CERT"), 0o600); err != nil {
		t.Fatal(err)
	}
	later := future.Add(time.Minute)
	_ = os.Chtimes(certFile, later, later)
	time.Sleep(1100 * time.Millisecond)
	if got := serial(); got != "2" {
		t.Fatalf("serial after a broken renewal = %s, want 2 (kept)", got)
	}
	if code, body := get(t, r.metrics+webhook.ReadyPath); code != 200 || !strings.Contains(body, "certificate reload failed") {
		t.Errorf("readyz = %d %q, want 200 noting the failed reload", code, body)
	}
}

// noVerdicts has no verdict for anything.
type noVerdicts struct{}

func (noVerdicts) Get(_ context.Context, repo, digest string) (verdict.Verdict, error) {
	return verdict.Verdict{}, fmt.Errorf("%s@%s: %w", repo, digest, verdict.ErrNotFound)
}
