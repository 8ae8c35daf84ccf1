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
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/signet-dev/signet/internal/admission"
	"github.com/signet-dev/signet/internal/testenv"
	"github.com/signet-dev/signet/internal/verdict"
	"github.com/signet-dev/signet/internal/webhook"
	"github.com/signet-dev/signet/internal/webhook/webhooktest"
)

// concurrency is the number of clients in the throughput benchmarks.
const concurrency = 16

// BenchmarkAdmission compares the decision for one pod with three containers
// made by signet's webhook (over HTTPS on loopback, verdicts in dynalite)
// with `cosign verify --key` of the same three images on the same local
// registry, and measures the webhook's throughput and latency percentiles at
// a fixed concurrency, with and without cache hits. Run by `make bench-webhook`.
func BenchmarkAdmission(b *testing.B) {
	testenv.AWSEnv(b)
	ctx := context.Background()
	d := testenv.StartDynamo(b)
	reg := testenv.Registry(b)
	cosign := testenv.NewCosign(b, testenv.Cosign2Version)
	key, pub := cosign.GenerateKeyPair(b)

	// Three images, pushed, signed with cosign, and with signet verdicts.
	var images []string
	for i := range 3 {
		img, err := random.Image(1024, 2)
		if err != nil {
			b.Fatal(err)
		}
		tag, _ := name.NewTag(fmt.Sprintf("%s/bench/app%d:v1", reg, i))
		if err := remote.Write(tag, img); err != nil {
			b.Fatal(err)
		}
		dg, _ := img.Digest()
		ref := fmt.Sprintf("%s/bench/app%d@%s", reg, i, dg)
		cosign.Sign(b, key, ref, true)
		if _, _, err := d.Store.Record(ctx, verdict.Verdict{Repository: tag.Context().Name(), Digest: dg.String(),
			Outcome: verdict.Signed, Reason: "signed", EventTime: time.Now()}); err != nil {
			b.Fatal(err)
		}
		images = append(images, ref)
	}
	verifyArgs := append([]string{"verify", "--key", pub, "--insecure-ignore-tlog=true",
		"--allow-insecure-registry", "--allow-http-registry", "--output=json"}, images...)
	if out, code := cosign.Run(b, nil, verifyArgs...); code != 0 {
		b.Fatalf("cosign verify of the signed images: exit %d\n%s", code, out)
	}

	ca := webhooktest.NewCA(b)
	cached := benchServer(b, d.Store, ca, true)
	uncached := benchServer(b, d.Store, ca, false)
	body := podReview3(images)
	client := benchClient(ca)
	if r := review(b, client, cached, body); !r.Allowed {
		b.Fatalf("webhook denied the signed pod: %+v", r.Result)
	}

	b.Run("pod3/webhook-https-cached", func(b *testing.B) {
		for b.Loop() {
			review(b, client, cached, body)
		}
	})
	b.Run("pod3/webhook-https-uncached", func(b *testing.B) {
		for b.Loop() {
			review(b, client, uncached, body)
		}
	})
	b.Run("pod3/cosign-verify", func(b *testing.B) {
		for b.Loop() {
			if out, code := cosign.Run(b, nil, verifyArgs...); code != 0 {
				b.Fatalf("cosign verify: exit %d\n%s", code, out)
			}
		}
	})
	// The three decisions in each iteration, reported side by side and as ratios.
	b.Run("pod3/side-by-side", func(b *testing.B) {
		var hit, miss, cos time.Duration
		for b.Loop() {
			t0 := time.Now()
			review(b, client, cached, body)
			t1 := time.Now()
			review(b, client, uncached, body)
			t2 := time.Now()
			if out, code := cosign.Run(b, nil, verifyArgs...); code != 0 {
				b.Fatalf("cosign verify: exit %d\n%s", code, out)
			}
			hit, miss, cos = hit+t1.Sub(t0), miss+t2.Sub(t1), cos+time.Since(t2)
		}
		n := float64(b.N)
		b.ReportMetric(float64(hit.Microseconds())/n/1000, "webhook-cached-ms")
		b.ReportMetric(float64(miss.Microseconds())/n/1000, "webhook-uncached-ms")
		b.ReportMetric(float64(cos.Microseconds())/n/1000, "cosign-ms")
		b.ReportMetric(float64(cos)/float64(hit), "cosign/webhook-cached")
		b.ReportMetric(float64(cos)/float64(miss), "cosign/webhook-uncached")
	})
	b.Run(fmt.Sprintf("throughput/cached-c%d", concurrency), func(b *testing.B) { throughput(b, client, cached, body) })
	b.Run(fmt.Sprintf("throughput/uncached-c%d", concurrency), func(b *testing.B) { throughput(b, client, uncached, body) })
}

// throughput sends b.N reviews from concurrency clients and reports requests
// per second and the p50 and p99 latency.
func throughput(b *testing.B, client *http.Client, url string, body []byte) {
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				t0 := time.Now()
				if r := review(b, client, url, body); !r.Allowed {
					b.Errorf("denied: %+v", r.Result)
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/took.Seconds(), "req/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds())/1000, "p99-ms")
}

func benchServer(b *testing.B, r verdict.Reader, ca *webhooktest.CA, cache bool) string {
	b.Helper()
	certFile, keyFile := ca.Issue(b, b.TempDir(), 1, "127.0.0.1")
	certs, err := webhook.NewCertReloader(certFile, keyFile)
	if err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m := admission.NewMetrics(reg)
	opts := []admission.CheckerOption{admission.WithMetrics(m)}
	if cache {
		opts = append(opts, admission.WithCache(10000, time.Hour, time.Hour))
	}
	rv, err := admission.NewReviewer(admission.Config{}, admission.NewChecker(r, opts...), admission.WithReviewMetrics(m))
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- webhook.New(certs, admission.NewHandler(rv), reg, webhook.WithDrain(0)).Serve(ctx, ln, mln)
	}()
	b.Cleanup(func() { cancel(); <-done })
	return "https://" + ln.Addr().String() + webhook.ValidatePath
}

// benchClient keeps connections alive, as the API server does.
func benchClient(ca *webhooktest.CA) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: ca.Pool()},
		MaxIdleConnsPerHost: concurrency,
		ForceAttemptHTTP2:   true,
	}}
}

func review(b testing.TB, client *http.Client, url string, body []byte) *admissionv1.AdmissionResponse {
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(raw, &out); err != nil || out.Response == nil {
		b.Fatalf("decoding review %q: %v", raw, err)
	}
	return out.Response
}

func podReview3(images []string) []byte {
	var containers []any
	for i, img := range images {
		containers = append(containers, map[string]string{"name": fmt.Sprintf("app%d", i), "image": img})
	}
	b, _ := json.Marshal(map[string]any{
		"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
		"request": map[string]any{
			"uid": "bench", "kind": map[string]string{"version": "v1", "kind": "Pod"},
			"resource":  map[string]string{"version": "v1", "resource": "pods"},
			"namespace": "team-a", "operation": "CREATE",
			"userInfo": map[string]any{"username": "system:serviceaccount:kube-system:replicaset-controller"},
			"object": map[string]any{"apiVersion": "v1", "kind": "Pod",
				"metadata": map[string]any{"generateName": "app-", "namespace": "team-a"},
				"spec":     map[string]any{"containers": containers}},
		},
	})
	return b
}
