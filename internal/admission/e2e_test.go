//go:build e2e

package admission_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	"github.com/signet-dev/signet/internal/admission"
	"github.com/signet-dev/signet/internal/imageref"
	"github.com/signet-dev/signet/internal/testenv"
	"github.com/signet-dev/signet/internal/verdict"
	"github.com/signet-dev/signet/internal/webhook"
	"github.com/signet-dev/signet/internal/webhook/webhooktest"
)

// TestE2E registers signet's webhook with a real kube-apiserver (and etcd)
// and creates objects through client-go: what the API server admits or
// refuses is the observable result. No kubelet runs; only admission is tested.
func TestE2E(t *testing.T) {
	testenv.AWSEnv(t)
	ctx := context.Background()
	d := testenv.StartDynamo(t)
	reg := testenv.Registry(t)

	// Verdicts as the signer writes them.
	signedImg := ecr + "/team/web@" + digW
	rejectedImg := ecr + "/team/web@" + digR
	unsignedImg := ecr + "/team/web@sha256:" + strings.Repeat("99", 32)
	record(t, d.Store, seedVerdicts()...)
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag(reg + "/team/api:v1")
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	regDigest, _ := img.Digest()
	record(t, d.Store, verdict.Verdict{Repository: reg + "/team/api", Digest: regDigest.String(), Outcome: verdict.Signed, Reason: "signed by signet"})

	// The webhook, in-process, over TLS with a test CA. The handler can be
	// swapped to change configuration mid-test; requests the API server
	// sends are kept to compare with testdata/.
	ca := webhooktest.NewCA(t)
	certFile, keyFile := ca.Issue(t, t.TempDir(), 1, "127.0.0.1")
	certs, err := webhook.NewCertReloader(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	handler := func(cfg admission.Config, opts ...admission.CheckerOption) http.Handler {
		rv, err := admission.NewReviewer(cfg, admission.NewChecker(d.Store, opts...))
		if err != nil {
			t.Fatal(err)
		}
		return admission.NewHandler(rv)
	}
	sw := &swapHandler{}
	sw.set(handler(admission.Config{Timeout: 3 * time.Second, BreakglassGroups: []string{"system:masters"}}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	pinner, err := admission.NewPinner(admission.Config{Timeout: 3 * time.Second, BreakglassGroups: []string{"system:masters"}},
		admission.NewChecker(d.Store, admission.WithResolver(imageref.NewRemoteResolver())))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		served <- webhook.New(certs, sw, prometheus.NewRegistry(), webhook.WithDrain(0),
			webhook.WithMutator(admission.NewHandler(pinner))).Serve(sctx, ln, mln)
	}()
	t.Cleanup(func() { stop(); <-served })

	cs, warnings := startKube(t)

	for _, ns := range []string{"team-a", "signet-system"} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	registerWebhook(t, cs, "https://"+ln.Addr().String()+webhook.ValidatePath, ca.PEM)

	create := func(ns, pod, image string, annotations map[string]string) error {
		_, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: pod, Annotations: annotations},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
		}, metav1.CreateOptions{})
		return err
	}
	// The API server picks up a new webhook configuration within a moment:
	// wait until an unsigned pod is refused.
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		err := create("team-a", fmt.Sprintf("probe-%d", i), unsignedImg, nil)
		if err != nil && strings.Contains(err.Error(), "signet") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook not called within 30s; last create: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	denied := func(t *testing.T, err error, want ...string) {
		t.Helper()
		if err == nil {
			t.Fatalf("created, want denied mentioning %q", want)
		}
		t.Logf("denied: %v", err)
		if !apierrors.IsForbidden(err) {
			t.Errorf("error %v is not Forbidden", err)
		}
		for _, w := range append([]string{`admission webhook "verdict.signet.dev" denied the request`}, want...) {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not mention %q", err, w)
			}
		}
	}

	t.Run("signed digest is admitted", func(t *testing.T) {
		if err := create("team-a", "signed", signedImg, nil); err != nil {
			t.Fatalf("pod with a signed digest: %v", err)
		}
		if _, err := cs.CoreV1().Pods("team-a").Get(ctx, "signed", metav1.GetOptions{}); err != nil {
			t.Fatalf("admitted pod not stored: %v", err)
		}
	})
	t.Run("unsigned digest is denied", func(t *testing.T) {
		denied(t, create("team-a", "unsigned", unsignedImg, nil), `image "`+unsignedImg+`"`, "no signet verdict")
	})
	t.Run("rejected digest is denied with the verdict's reason", func(t *testing.T) {
		denied(t, create("team-a", "rejected", rejectedImg, nil), "REJECTED: critical CVE-2026-0001 in openssl")
	})
	t.Run("deployment with an unsigned init container is denied", func(t *testing.T) {
		replicas := int32(2)
		_, err := cs.AppsV1().Deployments("team-a").Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "web"},
			Spec: appsv1.DeploymentSpec{
				Replicas: &replicas,
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
					Spec: corev1.PodSpec{
						InitContainers: []corev1.Container{{Name: "migrate", Image: unsignedImg}},
						Containers:     []corev1.Container{{Name: "web", Image: signedImg}},
					},
				},
			},
		}, metav1.CreateOptions{})
		denied(t, err, `container "migrate"`, "Deployment team-a/web")
	})
	t.Run("tag-only image is denied by default", func(t *testing.T) {
		denied(t, create("team-a", "tagged", reg+"/team/api:v1", nil), "not pinned by digest", reg+"/team/api:v1@sha256:<digest>")
	})
	t.Run("tag-only image is resolved when configured", func(t *testing.T) {
		sw.set(handler(admission.Config{Timeout: 3 * time.Second, BreakglassGroups: []string{"system:masters"}}, admission.WithResolver(imageref.NewRemoteResolver())))
		defer sw.set(handler(admission.Config{Timeout: 3 * time.Second, BreakglassGroups: []string{"system:masters"}}))
		if err := create("team-a", "tagged", reg+"/team/api:v1", nil); err != nil {
			t.Fatalf("tag of a signed digest, resolution on: %v", err)
		}
		denied(t, create("team-a", "tagged-missing", reg+"/team/api:v2", nil), "tag v2 not found")
	})
	t.Run("tag pinned to its digest by the mutating endpoint", func(t *testing.T) {
		registerPinner(t, cs, "https://"+ln.Addr().String()+webhook.MutatePath, ca.PEM)
		want := reg + "/team/api:v1@" + regDigest.String()
		deadline := time.Now().Add(30 * time.Second)
		for i := 0; ; i++ {
			// Until the API server calls the mutating webhook, the validating
			// one (tags denied) refuses the pod.
			pod := fmt.Sprintf("pinned-%d", i)
			err := create("team-a", pod, reg+"/team/api:v1", nil)
			if err == nil {
				got, err := cs.CoreV1().Pods("team-a").Get(ctx, pod, metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if img := got.Spec.Containers[0].Image; img != want {
					t.Fatalf("stored image %q, want %q", img, want)
				}
				break
			}
			if !strings.Contains(err.Error(), "not pinned by digest") || time.Now().After(deadline) {
				t.Fatalf("pod by tag with the pinning webhook: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		// A tag without a passing verdict is left alone and denied.
		push := func(repo string) {
			img, _ := random.Image(256, 1)
			tag, _ := name.NewTag(reg + "/" + repo + ":v1")
			if err := remote.Write(tag, img); err != nil {
				t.Fatal(err)
			}
		}
		push("team/unsigned")
		denied(t, create("team-a", "unsigned-tag", reg+"/team/unsigned:v1", nil), "not pinned by digest")
	})
	t.Run("excluded namespace is admitted", func(t *testing.T) {
		if err := create("signet-system", "unsigned", unsignedImg, nil); err != nil {
			t.Fatalf("unsigned pod in signet-system (excluded by the namespaceSelector): %v", err)
		}
	})
	t.Run("breakglass is admitted with a warning", func(t *testing.T) {
		warnings.reset()
		err := create("team-a", "breakglass", rejectedImg, map[string]string{admission.DefaultBreakglass: "INC-4711"})
		if err != nil {
			t.Fatalf("breakglass pod: %v", err)
		}
		if w := warnings.all(); !strings.Contains(w, `breakglass "INC-4711"`) {
			t.Errorf("warnings %q: want the breakglass warning", w)
		}
	})
	t.Run("warn mode admits with warnings", func(t *testing.T) {
		sw.set(handler(admission.Config{Mode: admission.Warn, Timeout: 3 * time.Second, BreakglassGroups: []string{"system:masters"}}))
		defer sw.set(handler(admission.Config{Timeout: 3 * time.Second, BreakglassGroups: []string{"system:masters"}}))
		warnings.reset()
		if err := create("team-a", "warned", rejectedImg, nil); err != nil {
			t.Fatalf("warn mode: %v", err)
		}
		if w := warnings.all(); !strings.Contains(w, "would deny") || !strings.Contains(w, "REJECTED") {
			t.Errorf("warnings %q: want a would-deny warning", w)
		}
	})
	t.Run("verdict store down fails closed", func(t *testing.T) {
		d.Stop()
		denied(t, create("team-a", "signed-store-down", signedImg, nil), "could not read the verdict store", "fails closed")
	})

	t.Run("deploy manifests are accepted by the API server", func(t *testing.T) {
		applyDeployDryRun(t, cs)
	})

	if dir := os.Getenv("SIGNET_E2E_CAPTURE"); dir != "" {
		sw.dump(t, dir)
	}
}

// swapHandler serves with the handler last set, and keeps the bodies it saw.
type swapHandler struct {
	h      atomic.Value
	mu     sync.Mutex
	bodies [][]byte
}

func (s *swapHandler) set(h http.Handler) { s.h.Store(h) }

func (s *swapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.bodies = append(s.bodies, b)
	s.mu.Unlock()
	r.Body = io.NopCloser(bytes.NewReader(b))
	s.h.Load().(http.Handler).ServeHTTP(w, r)
}

func (s *swapHandler) dump(t *testing.T, dir string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, b := range s.bodies {
		_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("review-%02d.json", i)), b, 0o644)
	}
}

// warningSink keeps the warnings the API server returns.
type warningSink struct {
	mu sync.Mutex
	ws []string
}

func (w *warningSink) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ws = append(w.ws, text)
}

func (w *warningSink) reset() { w.mu.Lock(); w.ws = nil; w.mu.Unlock() }

func (w *warningSink) all() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.ws, "\n")
}

// startKube starts etcd and kube-apiserver on loopback and returns a
// clientset authenticated as a cluster admin by a static token.
func startKube(t *testing.T) (*kubernetes.Clientset, *warningSink) {
	t.Helper()
	apiserver := testenv.Tool(t, "kube-apiserver", testenv.KubeVersion)
	dir := t.TempDir()

	cport, pport := testenv.FreePort(t), testenv.FreePort(t)
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", cport)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", pport)
	testenv.Start(t, nil, "etcd", "--name=signet-e2e", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=signet-e2e="+peerURL, "--log-level=warn")
	testenv.WaitTCP(t, fmt.Sprintf("127.0.0.1:%d", cport), 30*time.Second)

	// Service-account signing key and a static admin token.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	pder, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	saKey, saPub, tokens := filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub"), filepath.Join(dir, "tokens.csv")
	must(t, os.WriteFile(saKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600))
	must(t, os.WriteFile(saPub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pder}), 0o600))
	token := "signet-e2e-admin-token"
	must(t, os.WriteFile(tokens, []byte(token+`,admin,admin,"system:masters"`+"\n"), 0o600))

	port := testenv.FreePort(t)
	testenv.Start(t, nil, apiserver,
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", port),
		"--cert-dir="+filepath.Join(dir, "certs"),
		"--token-auth-file="+tokens,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+saPub, "--service-account-signing-key-file="+saKey,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--endpoint-reconciler-type=none",
		// No controller-manager creates the default service account.
		"--disable-admission-plugins=ServiceAccount",
		"--v=1",
	)
	warnings := &warningSink{}
	cfg := &rest.Config{
		Host:            fmt.Sprintf("https://127.0.0.1:%d", port),
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true}, // its self-signed loopback certificate
		WarningHandler:  warnings,
		Timeout:         30 * time.Second,
	}
	// Wait for /readyz.
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(90 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, cfg.Host+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("kube-apiserver not ready after 90s (last: %v)", err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs, warnings
}

// registerWebhook creates the ValidatingWebhookConfiguration of
// deploy/webhook.yaml, as shipped, with only its clientConfig pointed at url
// (the test's webhook runs outside the cluster) and the CA bundle that
// cert-manager would inject.
func registerWebhook(t *testing.T, cs *kubernetes.Clientset, url string, caBundle []byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(testenv.Root(), "deploy", "webhook.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg admissionregistrationv1.ValidatingWebhookConfiguration
	if err := yaml.UnmarshalStrict(raw, &cfg); err != nil {
		t.Fatalf("deploy/webhook.yaml: %v", err)
	}
	if len(cfg.Webhooks) != 1 {
		t.Fatalf("deploy/webhook.yaml has %d webhooks, want 1", len(cfg.Webhooks))
	}
	cfg.Webhooks[0].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caBundle}
	cfg.Name = "signet-e2e" // the dry-run check of deploy/ below creates "signet" too
	cfg.Annotations = nil   // no cert-manager here
	if _, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(context.Background(), &cfg, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the ValidatingWebhookConfiguration of deploy/webhook.yaml: %v", err)
	}
}

// registerPinner creates the MutatingWebhookConfiguration of the optional
// pinning endpoint, shaped like deploy/optional/pin-tags.yaml, calling url.
func registerPinner(t *testing.T, cs *kubernetes.Clientset, url string, caBundle []byte) {
	t.Helper()
	ignore := admissionregistrationv1.Ignore
	none := admissionregistrationv1.SideEffectClassNone
	never := admissionregistrationv1.NeverReinvocationPolicy
	timeout := int32(5)
	_, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(context.Background(),
		&admissionregistrationv1.MutatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: "signet-pin-e2e"},
			Webhooks: []admissionregistrationv1.MutatingWebhook{{
				Name:                    "pin.signet.dev",
				ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caBundle},
				FailurePolicy:           &ignore,
				SideEffects:             &none,
				TimeoutSeconds:          &timeout,
				ReinvocationPolicy:      &never,
				AdmissionReviewVersions: []string{"v1"},
				NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
					Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn,
					Values: []string{"kube-system", "signet-system"},
				}}},
				Rules: []admissionregistrationv1.RuleWithOperations{{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
					Rule: admissionregistrationv1.Rule{
						APIGroups: []string{"", "apps", "batch"}, APIVersions: []string{"v1"},
						Resources: []string{"pods", "replicationcontrollers", "deployments", "replicasets", "statefulsets",
							"daemonsets", "jobs", "cronjobs"},
					},
				}},
			}},
		}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating the MutatingWebhookConfiguration: %v", err)
	}
}

// applyDeployDryRun decodes deploy/*.yaml strictly and creates each
// Kubernetes object with a server-side dry run, so the API server validates
// them. cert-manager's kinds are skipped: no cert-manager runs here.
func applyDeployDryRun(t *testing.T, cs *kubernetes.Clientset) {
	t.Helper()
	ctx := context.Background()
	decoder := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
	files, _ := filepath.Glob(filepath.Join(testenv.Root(), "deploy", "*.yaml"))
	optional, _ := filepath.Glob(filepath.Join(testenv.Root(), "deploy", "optional", "*.yaml"))
	files = append(files, optional...)
	if len(files) == 0 {
		t.Fatal("no deploy/*.yaml")
	}
	dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"}
	var created []string
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range strings.Split(string(b), "\n---\n") {
			if strings.Contains(doc, "apiVersion: cert-manager.io/") {
				continue
			}
			obj, _, err := decoder.Decode([]byte(doc), nil, nil)
			if err != nil {
				t.Errorf("%s: decoding: %v", f, err)
				continue
			}
			switch o := obj.(type) {
			case *corev1.Namespace:
				_, err = cs.CoreV1().Namespaces().Create(ctx, o, dry)
				if apierrors.IsAlreadyExists(err) { // the test made it already
					err = nil
				}
			case *corev1.ServiceAccount:
				_, err = cs.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, dry)
			case *corev1.Service:
				_, err = cs.CoreV1().Services(o.Namespace).Create(ctx, o, dry)
			case *appsv1.Deployment:
				_, err = cs.AppsV1().Deployments(o.Namespace).Create(ctx, o, dry)
			case *policyv1.PodDisruptionBudget:
				_, err = cs.PolicyV1().PodDisruptionBudgets(o.Namespace).Create(ctx, o, dry)
			case *admissionregistrationv1.ValidatingWebhookConfiguration:
				_, err = cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, o, dry)
			case *admissionregistrationv1.MutatingWebhookConfiguration:
				_, err = cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, o, dry)
			default:
				t.Errorf("%s: unexpected kind %T", f, obj)
				continue
			}
			if err != nil {
				t.Errorf("%s: dry-run create: %v", f, err)
				continue
			}
			created = append(created, fmt.Sprintf("%T", obj))
		}
	}
	t.Logf("dry-run created %v", created)
	if len(created) != 7 {
		t.Errorf("dry-run created %d objects, want 7 (namespace, service account, deployment, PDB, service, both webhook configurations)", len(created))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
