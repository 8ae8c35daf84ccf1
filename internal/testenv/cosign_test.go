package testenv_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/signet-dev/signet/internal/testenv"
)

// pushRandom pushes a random image to repo on reg and returns its digest
// reference.
func pushRandom(t *testing.T, reg, repo string) string {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(reg + "/" + repo + ":latest")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s/%s@%s", reg, repo, d)
}

// tagExists reports whether tag exists in the repository of image.
func tagExists(t *testing.T, image, tag string) bool {
	t.Helper()
	d, err := name.NewDigest(image)
	if err != nil {
		t.Fatal(err)
	}
	_, err = remote.Head(d.Context().Tag(tag))
	return err == nil
}

func TestCosignSignVerify(t *testing.T) {
	tests := []struct {
		name    string
		version string
		legacy  bool
	}{
		{"v2", testenv.Cosign2Version, true},
		{"v3 bundle", testenv.Cosign3Version, false},
		{"v3 legacy", testenv.Cosign3Version, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := testenv.NewCosign(t, tc.version)
			reg := testenv.Registry(t)
			image := pushRandom(t, reg, "team/app")
			key, pub := c.GenerateKeyPair(t)
			_, otherPub := c.GenerateKeyPair(t)

			if out, code := c.Verify(t, pub, image); code == 0 {
				t.Fatalf("Verify(%q) of an unsigned image = exit 0, want non-zero; output:\n%s", image, out)
			}
			c.Sign(t, key, image, tc.legacy)

			d, _ := name.NewDigest(image)
			sigTag := fmt.Sprintf("sha256-%s.sig", d.DigestStr()[len("sha256:"):])
			if got := tagExists(t, image, sigTag); got != tc.legacy {
				t.Errorf("after Sign(legacy=%v), tag %s exists = %v, want %v", tc.legacy, sigTag, got, tc.legacy)
			}
			idx, err := remote.Referrers(d)
			if err != nil {
				t.Fatalf("listing referrers of %s: %v", d, err)
			}
			im, err := idx.IndexManifest()
			if err != nil {
				t.Fatal(err)
			}
			if got, want := len(im.Manifests), map[bool]int{true: 0, false: 1}[tc.legacy]; got != want {
				t.Errorf("after Sign(legacy=%v), %d referrers, want %d", tc.legacy, got, want)
			}
			if out, code := c.Verify(t, pub, image); code != 0 {
				t.Errorf("Verify(%q) with the signing key = exit %d, want 0; output:\n%s", image, code, out)
			}
			if out, code := c.Verify(t, otherPub, image); code == 0 {
				t.Errorf("Verify(%q) with another key = exit 0, want non-zero; output:\n%s", image, out)
			}
		})
	}
}

func TestCosignAttest(t *testing.T) {
	for _, version := range []string{testenv.Cosign2Version, testenv.Cosign3Version} {
		t.Run(version, func(t *testing.T) {
			c := testenv.NewCosign(t, version)
			image := pushRandom(t, testenv.Registry(t), "team/app")
			key, pub := c.GenerateKeyPair(t)
			pred := filepath.Join(t.TempDir(), "predicate.json")
			if err := os.WriteFile(pred, []byte(`{"builder":"signet-test"}`), 0o644); err != nil {
				t.Fatal(err)
			}
			const typ = "https://signet.dev/test/v1"
			c.Attest(t, key, image, typ, pred, !c.V3())
			if out, code := c.VerifyAttestation(t, pub, image, typ); code != 0 {
				t.Errorf("VerifyAttestation(%q) = exit %d, want 0; output:\n%s", image, code, out)
			}
		})
	}
}

func TestCosignSignWithKMS(t *testing.T) {
	for _, version := range []string{testenv.Cosign2Version, testenv.Cosign3Version} {
		t.Run(version, func(t *testing.T) {
			testenv.AWSEnv(t)
			k := testenv.StartKMS(t)
			c := testenv.NewCosign(t, version)
			image := pushRandom(t, testenv.Registry(t), "team/app")
			c.Sign(t, k.KeyRef, image, true)
			pub := filepath.Join(t.TempDir(), "kms.pub")
			if err := os.WriteFile(pub, k.PEM, 0o644); err != nil {
				t.Fatal(err)
			}
			if out, code := c.Verify(t, pub, image); code != 0 {
				t.Errorf("Verify(%q) with the KMS public key = exit %d, want 0; output:\n%s", image, code, out)
			}
			if out, code := c.Verify(t, k.KeyRef, image); code != 0 {
				t.Errorf("Verify(%q) with %s = exit %d, want 0; output:\n%s", image, k.KeyRef, code, out)
			}
		})
	}
}
