package admission_test

import (
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/signet-dev/signet/internal/admission"
	"github.com/signet-dev/signet/internal/imageref"
	"github.com/signet-dev/signet/internal/testenv"
	"github.com/signet-dev/signet/internal/verdict"
)

func newReviewer(t testing.TB, r verdict.Reader, cfg admission.Config, copts []admission.CheckerOption, ropts ...admission.ReviewerOption) *admission.Reviewer {
	t.Helper()
	rv, err := admission.NewReviewer(cfg, admission.NewChecker(r, copts...), ropts...)
	if err != nil {
		t.Fatal(err)
	}
	return rv
}

// TestKinds sends every workload kind, each with an init container and a
// container, through the handler against dynalite: first both images fail
// (one REJECTED, one without a verdict) and the message names both, then the
// signer records passing verdicts and every kind is admitted.
func TestKinds(t *testing.T) {
	testenv.AWSEnv(t)
	d := testenv.StartDynamo(t)
	record(t, d.Store, seedVerdicts()...)
	url := serve(t, newReviewer(t, d.Store, admission.Config{}, nil))

	kinds := []string{"pod", "replicationcontroller", "deployment", "replicaset", "statefulset", "daemonset", "job", "cronjob"}
	for _, k := range kinds {
		t.Run(k+"/denied", func(t *testing.T) {
			got := post(t, url, fixture(t, "kind-"+k+".json", ""))
			assertResponse(t, k, got, false, []string{
				`container "api" image "` + ecr + "/team/api@" + digA + `": REJECTED: policy team-api`,
				`container "migrate" image "` + ecr + "/team/migrate:v7@" + digC + `": no signet verdict for ` + ecr + "/team/migrate@" + digC,
				"2 image(s)", "team-a/",
			}, nil)
		})
	}

	// The signer changes its mind about team/api and verifies team/migrate.
	record(t, d.Store,
		verdict.Verdict{Repository: ecr + "/team/api", Digest: digA, Outcome: verdict.Signed, Reason: "signed by signet", EventTime: t0.Add(time.Hour)},
		verdict.Verdict{Repository: ecr + "/team/migrate", Digest: digC, Outcome: verdict.Verified, Reason: "verified", EventTime: t0.Add(time.Hour)},
	)
	for _, k := range kinds {
		t.Run(k+"/allowed", func(t *testing.T) {
			assertResponse(t, k, post(t, url, fixture(t, "kind-"+k+".json", "")), true, nil, nil)
		})
	}
}

// TestImageForms covers how images are written: by tag, by digest, by both,
// Docker Hub short names, a registry with a port, other repositories, invalid
// references, and the requests that are not checked at all.
func TestImageForms(t *testing.T) {
	testenv.AWSEnv(t)
	d := testenv.StartDynamo(t)
	record(t, d.Store, seedVerdicts()...)

	// A real registry for tag resolution, with team/web:v1 signed.
	reg := testenv.Registry(t)
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(reg + "/team/web:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	regDigest, _ := img.Digest()
	record(t, d.Store, verdict.Verdict{Repository: reg + "/team/web", Digest: regDigest.String(), Outcome: verdict.Signed, Reason: "signed by signet"})
	emptyReg := testenv.Registry(t)
	deadReg := deadAddr(t)

	resolve := []admission.CheckerOption{admission.WithResolver(imageref.NewRemoteResolver())}
	for _, tc := range []struct {
		name, fixture, registry string
		cfg                     admission.Config
		opts                    []admission.CheckerOption
		allowed                 bool
		msg, warn               []string
	}{
		{name: "digest", fixture: "pod-digest.json", allowed: true},
		// Two reviews exactly as kube-apiserver v1.37.2 sent them in the e2e test.
		{name: "apiserver: signed pod", fixture: "apiserver-pod-signed.json", allowed: true},
		{name: "apiserver: deployment with an unsigned init container", fixture: "apiserver-deployment-unsigned-init.json",
			msg: []string{"1 image(s) of Deployment team-a/web", `container "migrate"`, "no signet verdict"}},
		{name: "tag denied by default", fixture: "pod-tag.json",
			msg: []string{`image "` + ecr + `/team/web:v1"`, "not pinned by digest", ecr + "/team/web:v1@sha256:<digest>", "signet verdict"}},
		{name: "tag and digest: the digest decides", fixture: "pod-tag-digest.json", allowed: true},
		{name: "tag and digest with resolution on: no registry asked", fixture: "pod-tag-digest.json", opts: resolve, allowed: true},
		{name: "nginx by digest is index.docker.io/library/nginx", fixture: "pod-nginx.json", allowed: true},
		{name: "docker.io/library/nginx:1.27@digest", fixture: "pod-docker-io.json", allowed: true},
		{name: "bare nginx is a tag", fixture: "pod-nginx-tag.json",
			msg: []string{`image "nginx"`, "not pinned by digest", "index.docker.io/library/nginx:latest@sha256:<digest>"}},
		{name: "registry with a port", fixture: "pod-port.json", allowed: true},
		{name: "a verdict belongs to its repository", fixture: "pod-other-repo.json",
			msg: []string{"no signet verdict for " + ecr + "/team/other@" + digW}},
		{name: "uppercase", fixture: "pod-uppercase.json",
			msg: []string{`image "` + ecr + `/Team/Web:v1": not a valid image reference`, "repository can only contain"}},
		{name: "malformed", fixture: "pod-malformed.json",
			msg: []string{"4 image(s)", `"nginx@sha256:abc": not a valid image reference`, `image ":::"`, `image " nginx"`, "'@'"}},
		{name: "rejected", fixture: "pod-rejected.json", msg: []string{"REJECTED: critical CVE-2026-0001 in openssl"}},
		{name: "deleted", fixture: "pod-deleted.json", msg: []string{"DELETED: image deleted"}},
		{name: "three containers", fixture: "pod-three.json",
			msg: []string{"2 image(s)", `"app0"`, `"app1"`}},
		{name: "tag resolved at the registry", fixture: "pod-registry-tag.json", registry: reg, opts: resolve, allowed: true},
		{name: "tag not in the registry", fixture: "pod-registry-tag.json", registry: emptyReg, opts: resolve,
			msg: []string{"tag v1 not found in " + emptyReg + "/team/web"}},
		{name: "registry down fails closed", fixture: "pod-registry-tag.json", registry: deadReg, opts: resolve,
			msg: []string{"could not resolve tag v1", "fails closed"}},
		{name: "registry down, failure policy open", fixture: "pod-registry-tag.json", registry: deadReg, opts: resolve,
			cfg: admission.Config{FailurePolicy: admission.FailOpen}, allowed: true,
			warn: []string{"admitted without a check (failure policy open)", "could not resolve tag v1"}},
		{name: "ephemeral container added by kubectl debug", fixture: "pod-ephemeral.json",
			msg: []string{`container "debugger" image "busybox:1.36"`, "not pinned"}},
		{name: "pod status update is not checked", fixture: "pod-status.json", allowed: true},
		{name: "delete is not checked", fixture: "pod-delete.json", allowed: true},
		{name: "update keeping a rejected image goes through", fixture: "deployment-update-same.json", allowed: true},
		{name: "update to a rejected image is denied", fixture: "deployment-update-new.json",
			msg: []string{"1 image(s)", "REJECTED"}},
		{name: "warn mode", fixture: "pod-rejected.json", cfg: admission.Config{Mode: admission.Warn}, allowed: true,
			warn: []string{"warn mode, would deny", "REJECTED: critical CVE-2026-0001"}},
		{name: "audit mode", fixture: "pod-rejected.json", cfg: admission.Config{Mode: admission.Audit}, allowed: true},
		{name: "excluded namespace", fixture: "pod-excluded.json", cfg: admission.Config{ExcludeNamespaces: []string{"kube-*"}}, allowed: true},
		{name: "namespace not excluded", fixture: "pod-excluded.json", msg: []string{"REJECTED"}},
		{name: "namespace outside include list", fixture: "pod-excluded.json", cfg: admission.Config{IncludeNamespaces: []string{"team-*"}}, allowed: true},
		{name: "namespace in include list", fixture: "pod-rejected.json", cfg: admission.Config{IncludeNamespaces: []string{"team-*"}}, msg: []string{"REJECTED"}},
		{name: "breakglass", fixture: "pod-breakglass.json", cfg: admission.Config{BreakglassGroups: []string{"system:masters"}}, allowed: true,
			warn: []string{`breakglass "INC-4711: hotfix while signer is down"`}},
		{name: "breakglass by a user allowed by name", fixture: "pod-breakglass.json", cfg: admission.Config{BreakglassGroups: []string{"kubernetes-admin"}}, allowed: true,
			warn: []string{`breakglass "INC-4711`}},
		{name: "breakglass off by default", fixture: "pod-breakglass.json", msg: []string{"REJECTED"}},
		{name: "breakglass by someone not allowed", fixture: "pod-breakglass.json", cfg: admission.Config{BreakglassGroups: []string{"sre-oncall"}}, msg: []string{"REJECTED"}},
		{name: "breakglass turned off", fixture: "pod-breakglass.json", cfg: admission.Config{Breakglass: "-"}, msg: []string{"REJECTED"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := serve(t, newReviewer(t, d.Store, tc.cfg, tc.opts))
			got := post(t, url, fixture(t, tc.fixture, tc.registry))
			assertResponse(t, tc.fixture, got, tc.allowed, tc.msg, tc.warn)
		})
	}
}

// TestDecisionLog checks the one log line per checked request, and that
// audit and breakglass decisions are logged at warn level with the images.
func TestDecisionLog(t *testing.T) {
	testenv.AWSEnv(t)
	d := testenv.StartDynamo(t)
	record(t, d.Store, seedVerdicts()...)
	for _, tc := range []struct {
		fixture  string
		cfg      admission.Config
		decision string
		level    string
		extra    string
	}{
		{"pod-digest.json", admission.Config{}, "allowed", "INFO", ""},
		{"pod-rejected.json", admission.Config{}, "denied", "WARN", "critical CVE"},
		{"pod-rejected.json", admission.Config{Mode: admission.Audit}, "audited", "WARN", "critical CVE"},
		{"pod-breakglass.json", admission.Config{BreakglassGroups: []string{"system:masters"}}, "breakglass", "WARN", "INC-4711"},
		{"pod-excluded.json", admission.Config{ExcludeNamespaces: []string{"kube-system"}}, "", "", ""},
	} {
		t.Run(tc.fixture+"/"+string(tc.cfg.Mode), func(t *testing.T) {
			var logs logLines
			l := slog.New(slog.NewJSONHandler(&logs, nil))
			url := serve(t, newReviewer(t, d.Store, tc.cfg, nil, admission.WithLogger(l)))
			post(t, url, fixture(t, tc.fixture, ""))
			es := logs.entries(t)
			if tc.decision == "" {
				if len(es) != 0 {
					t.Fatalf("skipped request logged %v, want nothing", es)
				}
				return
			}
			if len(es) != 1 {
				t.Fatalf("got %d log lines, want 1: %s", len(es), logs.String())
			}
			e := es[0]
			if e["decision"] != tc.decision || e["level"] != tc.level || e["uid"] == "" || e["namespace"] != "team-a" {
				t.Errorf("log line %v: want decision %s at %s with uid and namespace", e, tc.decision, tc.level)
			}
			imgs, _ := e["images"].([]any)
			if len(imgs) != 1 {
				t.Fatalf("log line images = %v, want one", e["images"])
			}
			img := imgs[0].(map[string]any)
			if img["repository"] != ecr+"/team/web" || img["digest"] == "" || img["outcome"] == "" {
				t.Errorf("logged image %v: want repository, digest and outcome", img)
			}
			if !strings.Contains(logs.String(), tc.extra) {
				t.Errorf("log %s does not mention %q", logs.String(), tc.extra)
			}
		})
	}
}

// TestStoreDown stops dynalite: uncached look-ups then fail closed (or open
// with a warning when configured), while answers still in the cache stand.
func TestStoreDown(t *testing.T) {
	testenv.AWSEnv(t)
	d := testenv.StartDynamo(t)
	record(t, d.Store, seedVerdicts()...)
	cached := newReviewer(t, d.Store, admission.Config{Timeout: 2 * time.Second},
		[]admission.CheckerOption{admission.WithCache(100, time.Minute, time.Minute)})
	cachedURL := serve(t, cached)
	assertResponse(t, "warm", post(t, cachedURL, fixture(t, "pod-digest.json", "")), true, nil, nil)

	d.Stop()
	closed := serve(t, newReviewer(t, d.Store, admission.Config{Timeout: 2 * time.Second, BreakglassGroups: []string{"system:masters"}}, nil))
	open := serve(t, newReviewer(t, d.Store, admission.Config{Timeout: 2 * time.Second, FailurePolicy: admission.FailOpen}, nil))

	assertResponse(t, "closed", post(t, closed, fixture(t, "pod-digest.json", "")), false,
		[]string{"could not read the verdict store", "fails closed", ecr + "/team/web@" + digW}, nil)
	assertResponse(t, "open", post(t, open, fixture(t, "pod-digest.json", "")), true, nil,
		[]string{"failure policy open", "could not read the verdict store"})
	assertResponse(t, "cached", post(t, cachedURL, fixture(t, "pod-digest.json", "")), true, nil, nil)
	// Breakglass still lets a pod through while the store is down.
	assertResponse(t, "breakglass", post(t, closed, fixture(t, "pod-breakglass.json", "")), true, nil, []string{"breakglass"})
}

// TestCacheTTL shows that a cached answer, positive or negative, stands for
// its TTL and is read again after it.
func TestCacheTTL(t *testing.T) {
	testenv.AWSEnv(t)
	d := testenv.StartDynamo(t)
	record(t, d.Store, seedVerdicts()...)
	ttl, neg := 1500*time.Millisecond, 700*time.Millisecond
	url := serve(t, newReviewer(t, d.Store, admission.Config{}, []admission.CheckerOption{admission.WithCache(100, ttl, neg)}))

	// Positive: signed, then rejected by a newer event.
	assertResponse(t, "signed", post(t, url, fixture(t, "pod-digest.json", "")), true, nil, nil)
	// Negative: no verdict for team/other, then signed.
	assertResponse(t, "no verdict", post(t, url, fixture(t, "pod-other-repo.json", "")), false, []string{"no signet verdict"}, nil)
	start := time.Now()
	record(t, d.Store,
		verdict.Verdict{Repository: ecr + "/team/web", Digest: digW, Outcome: verdict.Rejected, Reason: "revoked", EventTime: t0.Add(time.Hour)},
		verdict.Verdict{Repository: ecr + "/team/other", Digest: digW, Outcome: verdict.Signed, Reason: "signed", EventTime: t0.Add(time.Hour)},
	)
	if time.Since(start) < neg {
		assertResponse(t, "signed, cached", post(t, url, fixture(t, "pod-digest.json", "")), true, nil, nil)
		assertResponse(t, "no verdict, cached", post(t, url, fixture(t, "pod-other-repo.json", "")), false, []string{"no signet verdict"}, nil)
	}
	time.Sleep(neg - time.Since(start))
	assertResponse(t, "negative entry expired", post(t, url, fixture(t, "pod-other-repo.json", "")), true, nil, nil)
	time.Sleep(ttl - time.Since(start))
	assertResponse(t, "positive entry expired", post(t, url, fixture(t, "pod-digest.json", "")), false, []string{"REJECTED: revoked"}, nil)
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
