package imagebuild

import (
	"os"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestImageDeterministic checks the assembly alone, with a fake binary, so it
// runs in -short too: the same inputs give the same digest, and each input
// changes it.
func TestImageDeterministic(t *testing.T) {
	p := DefaultPlatforms[1]
	certs, err := readCACerts("")
	if err != nil {
		t.Skipf("no system CA bundle: %v", err)
	}
	digest := func(p v1.Platform, bin, version string) v1.Hash {
		t.Helper()
		img, err := image(p, []byte(bin), certs, &options{version: version, source: DefaultSource})
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	base := digest(p, "\x7fELF fake", "v1")
	if again := digest(p, "\x7fELF fake", "v1"); again != base {
		t.Errorf("image digest = %s then %s for the same inputs, want equal", base, again)
	}
	for _, tc := range []struct {
		name     string
		p        v1.Platform
		bin, ver string
	}{
		{"binary", p, "\x7fELF other", "v1"},
		{"version", p, "\x7fELF fake", "v2"},
		{"platform", DefaultPlatforms[0], "\x7fELF fake", "v1"},
	} {
		if d := digest(tc.p, tc.bin, tc.ver); d == base {
			t.Errorf("changing the %s left the digest at %s", tc.name, d)
		}
	}
}

func TestReadCACerts(t *testing.T) {
	dir := t.TempDir()
	if _, err := readCACerts(dir + "/missing.pem"); err == nil {
		t.Errorf("readCACerts(missing file) = nil error, want one")
	}
	empty := dir + "/empty.pem"
	if err := os.WriteFile(empty, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readCACerts(empty); err == nil {
		t.Errorf("readCACerts(%q) = nil error, want one: it holds no certificate", empty)
	}
}
