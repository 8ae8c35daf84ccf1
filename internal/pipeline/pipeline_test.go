package pipeline_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/signet-dev/signet/internal/ecrevent"
	"github.com/signet-dev/signet/internal/oci"
	"github.com/signet-dev/signet/internal/pipeline"
	"github.com/signet-dev/signet/internal/signing"
	"github.com/signet-dev/signet/internal/testenv"
	"github.com/signet-dev/signet/internal/verdict"
)

// stack is a pipeline on a real registry, local-kms and dynalite.
type stack struct {
	host   string
	p      *pipeline.Pipeline
	signer *signing.Signer
	dyn    *testenv.Dynamo
	reg    *oci.Client
}

func newStack(t *testing.T, host string, opts ...pipeline.Option) *stack {
	t.Helper()
	testenv.AWSEnv(t)
	k := testenv.StartKMS(t)
	dyn := testenv.StartDynamo(t)
	if host == "" {
		host = testenv.Registry(t)
	}
	ctx := context.Background()
	signer, err := signing.NewKMS(ctx, k.KeyRef)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := oci.New()
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.New(reg, signer, dyn.Store, append([]pipeline.Option{pipeline.WithRegistry(host), pipeline.WithVersion("test")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return &stack{host: host, p: p, signer: signer, dyn: dyn, reg: reg}
}

// push writes img as repo:tag and returns its digest reference.
func (s *stack) push(t *testing.T, repo, tag string, img v1.Image) name.Digest {
	t.Helper()
	return testenv.Push(t, s.host, repo, tag, img)
}

func pushEvent(ref name.Digest, tag string) ecrevent.Target {
	return ecrevent.Target{
		EventID: "ev-" + ref.DigestStr()[7:19], Time: time.Now().UTC(), Account: "123456789012", Region: "us-east-1",
		Action: ecrevent.ActionPush, Repository: ref.Context().RepositoryStr(), Digest: ref.DigestStr(), Tag: tag,
	}
}

// layers returns the layer descriptors of repo:tag, or nil if the tag is absent.
func layers(t *testing.T, tag name.Tag) []v1.Descriptor {
	t.Helper()
	img, err := remote.Image(tag)
	if err != nil {
		if strings.Contains(err.Error(), "MANIFEST_UNKNOWN") || strings.Contains(err.Error(), "404") {
			return nil
		}
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return m.Layers
}

func TestSignOnPush(t *testing.T) {
	s := newStack(t, "")
	ctx := context.Background()
	img, _ := random.Image(512, 2)
	ref := s.push(t, "team/api", "1.4", img)

	res, err := s.p.Handle(ctx, pushEvent(ref, "1.4"))
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	if res.Outcome != "SIGNED" || !res.Changed || res.Signature == "" || res.Attestation == "" {
		t.Fatalf("Handle = %+v, want SIGNED with signature and attestation manifests", res)
	}

	sigLayers := layers(t, oci.SignatureTag(ref))
	if len(sigLayers) != 1 || sigLayers[0].MediaType != signing.SimpleSigningMediaType {
		t.Fatalf(".sig layers = %+v, want one simple-signing layer", sigLayers)
	}
	// The signature verifies with the KMS public key over the layer content,
	// and the payload names this repository and digest.
	sigImg, _ := remote.Image(oci.SignatureTag(ref))
	l, _ := sigImg.LayerByDigest(sigLayers[0].Digest)
	rc, _ := l.Compressed()
	buf := new(strings.Builder)
	_, _ = fmt.Fprint(buf, readAll(t, rc))
	payload := buf.String()
	if !strings.Contains(payload, `"docker-manifest-digest":"`+ref.DigestStr()+`"`) || !strings.Contains(payload, `"docker-reference":"`+ref.Context().Name()+`"`) {
		t.Errorf("payload %s does not bind %s", payload, ref)
	}
	sig, _ := base64.StdEncoding.DecodeString(sigLayers[0].Annotations[signing.SignatureAnnotation])
	pk, err := cryptoutils.UnmarshalPEMToPublicKey(s.signer.PublicKeyPEM())
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := signature.LoadVerifier(pk, crypto.SHA256)
	if err := pub.VerifySignature(strings.NewReader(string(sig)), strings.NewReader(payload)); err != nil {
		t.Errorf("signature does not verify with the KMS public key: %v", err)
	}
	attLayers := layers(t, oci.AttestationTag(ref))
	if len(attLayers) != 1 || attLayers[0].MediaType != signing.DSSEMediaType || attLayers[0].Annotations["predicateType"] != signing.VSAPredicateType {
		t.Fatalf(".att layers = %+v, want one DSSE layer with the VSA predicate type", attLayers)
	}

	v, err := s.dyn.Store.Get(ctx, ref.Context().Name(), ref.DigestStr())
	if err != nil {
		t.Fatal(err)
	}
	if v.Outcome != verdict.Signed || v.SignatureDigest != res.Signature || v.AttestationDigest != res.Attestation ||
		v.KeyID != s.signer.KeyID() || len(v.Tags) != 1 || v.Tags[0] != "1.4" || v.SignetVersion != "test" || v.EventID == "" {
		t.Errorf("verdict = %+v", v)
	}

	// Loop safety: the pushes of the .sig and .att tags are not signed again.
	for _, tag := range []name.Tag{oci.SignatureTag(ref), oci.AttestationTag(ref)} {
		d, _ := remote.Head(tag)
		art := ref.Context().Digest(d.Digest.String())
		res, err := s.p.Handle(ctx, pushEvent(art, tag.TagStr()))
		if err != nil || res.Outcome != pipeline.Skipped || !strings.Contains(res.Reason, "signature artifact") {
			t.Errorf("Handle(push of %s) = %+v, %v; want skipped as a signature artifact", tag.TagStr(), res, err)
		}
		if _, err := s.dyn.Store.Get(ctx, art.Context().Name(), art.DigestStr()); err == nil {
			t.Errorf("a verdict was written for signature artifact %s", art)
		}
		if l := layers(t, oci.SignatureTag(art)); l != nil {
			t.Errorf("signature artifact %s was signed: %+v", art, l)
		}
	}
}

func readAll(t *testing.T, rc interface {
	Read([]byte) (int, error)
	Close() error
}) string {
	t.Helper()
	defer rc.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := rc.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

func TestDuplicateAndConcurrentDeliveries(t *testing.T) {
	s := newStack(t, "")
	ctx := context.Background()
	img, _ := random.Image(256, 1)
	ref := s.push(t, "team/api", "2.0", img)
	ev := pushEvent(ref, "2.0")

	for i := range 10 {
		if _, err := s.p.Handle(ctx, ev); err != nil {
			t.Fatalf("delivery %d: %v", i, err)
		}
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if _, err := s.p.Handle(ctx, ev); err != nil {
				t.Errorf("concurrent delivery: %v", err)
			}
		})
	}
	wg.Wait()

	if got := layers(t, oci.SignatureTag(ref)); len(got) != 1 {
		t.Errorf("after 20 deliveries .sig has %d layers, want 1", len(got))
	}
	if got := layers(t, oci.AttestationTag(ref)); len(got) != 1 {
		t.Errorf("after 20 deliveries .att has %d layers, want 1", len(got))
	}
	hist, err := s.dyn.Store.History(ctx, ref.Context().Name(), ref.DigestStr())
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 1 {
		t.Errorf("after 20 deliveries the audit trail has %d entries, want 1: %+v", len(hist), hist)
	}
}

// foreignSign appends a simple-signing layer made with another key, as
// cosign sign --key does, and returns that key's verifier.
func foreignSign(t *testing.T, ref name.Digest) signature.Verifier {
	t.Helper()
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sv, _ := signature.LoadECDSASignerVerifier(priv, crypto.SHA256)
	pl, _ := signing.ImagePayload(ref)
	sig, _ := sv.SignMessage(strings.NewReader(string(pl)))
	base := mutate.MediaType(mutate.ConfigMediaType(empty.Image, types.OCIConfigJSON), types.OCIManifestSchema1)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:       static.NewLayer(pl, signing.SimpleSigningMediaType),
		MediaType:   signing.SimpleSigningMediaType,
		Annotations: map[string]string{signing.SignatureAnnotation: base64.StdEncoding.EncodeToString(sig)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(oci.SignatureTag(ref), img); err != nil {
		t.Fatal(err)
	}
	return sv
}

func TestKeepsOtherSignatures(t *testing.T) {
	s := newStack(t, "")
	ctx := context.Background()
	img, _ := random.Image(256, 1)
	ref := s.push(t, "team/web", "1", img)
	foreignSign(t, ref)
	before := layers(t, oci.SignatureTag(ref))

	if _, err := s.p.Handle(ctx, pushEvent(ref, "1")); err != nil {
		t.Fatal(err)
	}
	after := layers(t, oci.SignatureTag(ref))
	if len(after) != 2 || after[0].Digest != before[0].Digest || after[0].Annotations[signing.SignatureAnnotation] != before[0].Annotations[signing.SignatureAnnotation] {
		t.Fatalf(".sig layers after signet = %+v, want the earlier signature first and unchanged, then signet's", after)
	}
}

func TestImageIndex(t *testing.T) {
	s := newStack(t, "")
	ctx := context.Background()
	amd, _ := random.Image(128, 1)
	arm, _ := random.Image(128, 1)
	ref := testenv.PushIndex(t, s.host, "team/multi", "1.0",
		testenv.IndexEntry{Image: amd, Platform: v1.Platform{OS: "linux", Architecture: "amd64"}},
		testenv.IndexEntry{Image: arm, Platform: v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}})

	// A platform manifest's own untagged push may come first.
	ah, _ := arm.Digest()
	armRef := ref.Context().Digest(ah.String())
	if res, err := s.p.Handle(ctx, pushEvent(armRef, "")); err != nil || res.Outcome != "SIGNED" {
		t.Fatalf("Handle(untagged platform manifest) = %+v, %v", res, err)
	}

	res, err := s.p.Handle(ctx, pushEvent(ref, "1.0"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != "SIGNED" || len(res.Platforms) != 2 {
		t.Fatalf("Handle(index) = %+v, want SIGNED with two platforms", res)
	}
	for _, child := range []struct {
		img      v1.Image
		platform string
	}{{amd, "linux/amd64"}, {arm, "linux/arm64/v8"}} {
		d, _ := child.img.Digest()
		cref := ref.Context().Digest(d.String())
		v, err := s.dyn.Store.Get(ctx, cref.Context().Name(), cref.DigestStr())
		if err != nil {
			t.Fatal(err)
		}
		if v.Outcome != verdict.Signed || v.IndexDigest != ref.DigestStr() || v.Platform != child.platform {
			t.Errorf("verdict of %s = %+v, want SIGNED linked to %s", child.platform, v, ref.DigestStr())
		}
		if n := len(layers(t, oci.SignatureTag(cref))); n != 1 {
			t.Errorf("%s has %d signature layers, want 1", child.platform, n)
		}
	}
	// The platform manifest's own event again (a retry) keeps the link.
	if _, err := s.p.Handle(ctx, pushEvent(armRef, "")); err != nil {
		t.Fatal(err)
	}
	v, _ := s.dyn.Store.Get(ctx, armRef.Context().Name(), armRef.DigestStr())
	if v.IndexDigest != ref.DigestStr() {
		t.Errorf("after a re-delivered platform push the verdict lost its index: %+v", v)
	}
}

func TestDelete(t *testing.T) {
	s := newStack(t, "")
	ctx := context.Background()
	img, _ := random.Image(128, 1)
	ref := s.push(t, "team/gone", "1", img)
	if _, err := s.p.Handle(ctx, pushEvent(ref, "1")); err != nil {
		t.Fatal(err)
	}
	del := pushEvent(ref, "1")
	del.Action, del.Time = ecrevent.ActionDel, del.Time.Add(time.Second)

	// Still in the registry (only a tag went): nothing changes.
	if res, err := s.p.Handle(ctx, del); err != nil || res.Outcome != pipeline.Skipped {
		t.Fatalf("Handle(delete while present) = %+v, %v; want skipped", res, err)
	}
	if err := remote.Delete(ref); err != nil {
		t.Fatal(err)
	}
	res, err := s.p.Handle(ctx, del)
	if err != nil || res.Outcome != "DELETED" {
		t.Fatalf("Handle(delete) = %+v, %v; want DELETED", res, err)
	}
	v, _ := s.dyn.Store.Get(ctx, ref.Context().Name(), ref.DigestStr())
	if v.Outcome != verdict.Deleted || v.Allowed() || v.SignatureDigest == "" {
		t.Errorf("verdict after delete = %+v, want DELETED, kept for audit", v)
	}
}

// immutable wraps a registry like ECR with immutable tags: a manifest PUT
// to a tag that exists is refused with ECR's error.
func immutable(h http.Handler) http.Handler {
	var mu sync.Mutex
	seen := map[string]bool{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") && !strings.Contains(r.URL.Path, "/manifests/sha256:") {
			mu.Lock()
			exists := seen[r.URL.Path]
			seen[r.URL.Path] = true
			mu.Unlock()
			if exists {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprintf(w, `{"errors":[{"code":"TAG_INVALID","message":"The image tag '%s' already exists in the repository and cannot be overwritten because the repository is immutable."}]}`, r.URL.Path)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

func TestImmutableTags(t *testing.T) {
	srv := httptest.NewServer(immutable(registry.New(registry.Logger(log.New(io.Discard, "", 0)))))
	t.Cleanup(srv.Close)
	s := newStack(t, strings.TrimPrefix(srv.URL, "http://"))
	ctx := context.Background()
	img, _ := random.Image(128, 1)
	ref := s.push(t, "team/locked", "1", img)
	foreignSign(t, ref) // someone signed first: the .sig tag exists and cannot change

	res, err := s.p.Handle(ctx, pushEvent(ref, "1"))
	if err != nil {
		t.Fatalf("Handle = %v, want a verdict, not a retry", err)
	}
	if res.Outcome != "REJECTED" || !strings.Contains(res.Reason, "IMMUTABLE_WITH_EXCLUSION") {
		t.Fatalf("Handle = %+v, want REJECTED naming IMMUTABLE_WITH_EXCLUSION", res)
	}
	if got := layers(t, oci.SignatureTag(ref)); len(got) != 1 {
		t.Errorf("the earlier signature changed: %+v", got)
	}
}

// throttled answers the first n PUTs of signature and attestation manifests
// with 429, as ECR does past its PutImage rate, then lets them through.
func throttled(h http.Handler, n int) http.Handler {
	var mu sync.Mutex
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/sha256-") {
			mu.Lock()
			refuse := n > 0
			n--
			mu.Unlock()
			if refuse {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusTooManyRequests)
				fmt.Fprint(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"Rate exceeded"}]}`)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

func TestThrottling(t *testing.T) {
	quiet := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	t.Run("backs off and succeeds", func(t *testing.T) {
		srv := httptest.NewServer(throttled(quiet, 3))
		t.Cleanup(srv.Close)
		s := newStack(t, strings.TrimPrefix(srv.URL, "http://"))
		img, _ := random.Image(128, 1)
		ref := s.push(t, "team/busy", "1", img)
		res, err := s.p.Handle(context.Background(), pushEvent(ref, "1"))
		if err != nil || res.Outcome != "SIGNED" {
			t.Fatalf("Handle after 3 throttled PUTs = %+v, %v; want SIGNED", res, err)
		}
	})
	t.Run("hands the event back when throttling lasts", func(t *testing.T) {
		srv := httptest.NewServer(throttled(quiet, 1000))
		t.Cleanup(srv.Close)
		s := newStack(t, strings.TrimPrefix(srv.URL, "http://"))
		img, _ := random.Image(128, 1)
		dref := s.push(t, "team/busy", "1", img)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := s.p.Handle(ctx, pushEvent(dref, "1"))
		if err == nil {
			t.Fatalf("Handle under lasting throttling = %+v, nil; want an error so the platform retries", res)
		}
		if _, err := s.dyn.Store.Get(context.Background(), dref.Context().Name(), dref.DigestStr()); err == nil {
			t.Errorf("a verdict was recorded although the signature could not be written")
		}
	})
}

func TestIndexListingAnArtifact(t *testing.T) {
	s := newStack(t, "")
	ctx := context.Background()
	img, _ := random.Image(128, 1)
	ref := s.push(t, "team/odd", "1", img)
	foreignSign(t, ref)
	sigDesc, err := remote.Get(oci.SignatureTag(ref))
	if err != nil {
		t.Fatal(err)
	}
	sigImg, _ := sigDesc.Image()
	idx := testenv.PushIndex(t, s.host, "team/odd", "multi",
		testenv.IndexEntry{Image: img, Platform: v1.Platform{OS: "linux", Architecture: "amd64"}},
		testenv.IndexEntry{Image: sigImg, Platform: v1.Platform{OS: "linux", Architecture: "arm64"}})
	res, err := s.p.Handle(ctx, pushEvent(idx, "multi"))
	if err != nil || res.Outcome != "SIGNED" || len(res.Platforms) != 1 {
		t.Fatalf("Handle(index listing a signature manifest) = %+v, %v; want SIGNED with only the real platform", res, err)
	}
	sigRef := ref.Context().Digest(sigDesc.Digest.String())
	if _, err := s.dyn.Store.Get(ctx, sigRef.Context().Name(), sigRef.DigestStr()); err == nil {
		t.Errorf("the signature manifest listed in the index got a verdict")
	}
}

func TestSignatureTagHoldingSomethingElse(t *testing.T) {
	s := newStack(t, "")
	ctx := context.Background()
	img, _ := random.Image(128, 1)
	ref := s.push(t, "team/squat", "1", img)
	other, _ := random.Image(128, 1)
	squat := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: other, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}})
	if err := remote.WriteIndex(oci.SignatureTag(ref), squat); err != nil {
		t.Fatal(err)
	}
	before, _ := remote.Head(oci.SignatureTag(ref))

	res, err := s.p.Handle(ctx, pushEvent(ref, "1"))
	if err != nil || res.Outcome != "REJECTED" || !strings.Contains(res.Reason, "not hold a cosign signature image") {
		t.Fatalf("Handle = %+v, %v; want REJECTED naming the squatted tag", res, err)
	}
	after, _ := remote.Head(oci.SignatureTag(ref))
	if after.Digest != before.Digest {
		t.Errorf("signet overwrote what was at the .sig tag: %s -> %s", before.Digest, after.Digest)
	}
}
