package testenv

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Cosign runs a real cosign CLI, v2 or v3, offline: no Rekor, no Fulcio, no
// TUF, key-based only, against plain-HTTP registries on 127.0.0.1.
//
// The flags each version needs (from `cosign <cmd> --help`, the v3.1.3
// sources, since v3 hides deprecated flags from --help, and trying them):
//
// cosign v2.6.5 writes only the legacy format (a sha256-<hex>.sig tag):
//
//	sign:                       --tlog-upload=false --yes
//	verify, verify-attestation: --insecure-ignore-tlog=true
//
// cosign v3.1.3 writes a sigstore bundle (application/vnd.dev.sigstore.bundle.v0.3+json)
// as an OCI 1.1 referrer by default (on registries without the referrers API,
// go-containerregistry keeps the sha256-<hex> fallback tag index):
//
//	sign, bundle format: --use-signing-config=false --tlog-upload=false --yes
//	sign, legacy .sig:   the same plus --new-bundle-format=false (hidden, deprecated)
//	verify, verify-attestation, both formats: --insecure-ignore-tlog=true
//
// Why, for v3:
//
//   - --use-signing-config defaults to true and fetches a signing config from
//     TUF; with it, --tlog-upload=false (hidden, deprecated) is refused
//     ("--tlog-upload=false is not supported with --signing-config or
//     --use-signing-config"), and without --tlog-upload=false v3 posts to
//     rekor.sigstore.dev. The alternative v3 suggests is --signing-config FILE
//     with no transparency log (`cosign signing-config create`); with a key and
//     --use-signing-config=false no TUF fetch happens at all.
//   - verify with --key and --insecure-ignore-tlog needs no trusted root (no
//     TUF). It looks for bundle referrers first and verifies them; when there
//     are none it falls back to the legacy .sig tag by itself.
//     --new-bundle-format=false makes it read only the .sig tag. (For bundles
//     it prints "Existence of the claims in the transparency log was verified
//     offline" even though the tlog was skipped.)
//   - sign with --key awskms:///alias/NAME works with AWS_ENDPOINT_URL_KMS set
//     (StartKMS sets it in the test's environment, which cosign inherits).
//
// Both versions get --allow-insecure-registry and --allow-http-registry, and a
// private HOME, TUF_ROOT and Docker config so that nothing outside the test is
// read or written.
type Cosign struct {
	// Path is the cosign binary.
	Path string
	// Version is Cosign2Version or Cosign3Version.
	Version string

	home string
}

// NewCosign returns the cached cosign of version (Cosign2Version or
// Cosign3Version); the test fails if it is not installed.
func NewCosign(t testing.TB, version string) *Cosign {
	t.Helper()
	if version != Cosign2Version && version != Cosign3Version {
		t.Fatalf("NewCosign: unknown version %q (want %s or %s)", version, Cosign2Version, Cosign3Version)
	}
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".docker"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".docker", "config.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	return &Cosign{Path: Tool(t, "cosign", version), Version: version, home: home}
}

// V3 reports whether c is cosign v3.
func (c *Cosign) V3() bool { return strings.HasPrefix(c.Version, "v3.") }

// environ is the environment of every cosign run: the test's own (AWSEnv and
// StartKMS set AWS_* there), without ambient settings that would send cosign
// to the network or to other files, then env.
func (c *Cosign) environ(env []string) []string {
	drop := map[string]bool{
		"AWS_PROFILE": true, "AWS_CA_BUNDLE": true, "AWS_ROLE_ARN": true,
		"AWS_WEB_IDENTITY_TOKEN_FILE": true, "AWS_ENDPOINT_URL": true,
		"DOCKER_CONFIG": true, "HOME": true, "TUF_ROOT": true,
		"SIGSTORE_ROOT_FILE": true, "SIGSTORE_REKOR_PUBLIC_KEY": true,
		"SIGSTORE_CT_LOG_PUBLIC_KEY_FILE": true, "COSIGN_PASSWORD": true,
		"COSIGN_EXPERIMENTAL": true, "COSIGN_REPOSITORY": true,
		"COSIGN_DOCKER_MEDIA_TYPES": true, "HTTPS_PROXY": true, "HTTP_PROXY": true,
		"https_proxy": true, "http_proxy": true,
	}
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			out = append(out, kv)
		}
	}
	out = append(out,
		"HOME="+c.home,
		"DOCKER_CONFIG="+filepath.Join(c.home, ".docker"),
		"TUF_ROOT="+filepath.Join(c.home, "sigstore"),
		"COSIGN_PASSWORD=",
		"NO_PROXY=127.0.0.1,localhost",
	)
	return append(out, env...)
}

// Run runs cosign with args and env added to the cleaned environment, and
// returns its combined output and exit code. A run that cannot start, or
// takes more than two minutes, fails the test.
func (c *Cosign) Run(t testing.TB, env []string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Path, args...)
	cmd.Env = c.environ(env)
	cmd.Dir = c.home
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("cosign %s %s: timed out after 2m; output:\n%s", c.Version, strings.Join(args, " "), out.String())
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &exit):
		return out.String(), exit.ExitCode()
	default:
		t.Fatalf("running cosign %s: %v", c.Version, err)
		return "", -1
	}
}

// MustRun is Run that fails the test unless cosign exits 0.
func (c *Cosign) MustRun(t testing.TB, env []string, args ...string) string {
	t.Helper()
	out, code := c.Run(t, env, args...)
	if code != 0 {
		t.Fatalf("cosign %s %s: exit %d; output:\n%s", c.Version, strings.Join(args, " "), code, out)
	}
	return out
}

// GenerateKeyPair writes cosign.key and cosign.pub, with an empty password,
// into a new t.TempDir() and returns their paths.
func (c *Cosign) GenerateKeyPair(t testing.TB) (keyPath, pubPath string) {
	t.Helper()
	dir := t.TempDir()
	c.MustRun(t, nil, "generate-key-pair", "--output-key-prefix", filepath.Join(dir, "cosign"))
	return filepath.Join(dir, "cosign.key"), filepath.Join(dir, "cosign.pub")
}

// registryFlags are the flags for plain-HTTP registries on loopback.
var registryFlags = []string{"--allow-insecure-registry", "--allow-http-registry"}

// SignArgs returns the arguments of an offline `cosign sign` of image with key
// (a file or a KMS reference such as awskms:///alias/NAME). v2 always writes
// the legacy .sig tag; v3 writes a bundle unless legacy is true.
func (c *Cosign) SignArgs(key, image string, legacy bool) []string {
	args := []string{"sign", "--key", key, "--tlog-upload=false", "--yes"}
	if c.V3() {
		args = append(args, "--use-signing-config=false")
		if legacy {
			args = append(args, "--new-bundle-format=false")
		}
	}
	args = append(args, registryFlags...)
	return append(args, image)
}

// Sign signs image (by digest) offline with key, failing the test if cosign
// fails. env is added to cosign's environment (the KMS endpoint is already
// there when the test called StartKMS).
func (c *Cosign) Sign(t testing.TB, key, image string, legacy bool, env ...string) {
	t.Helper()
	c.MustRun(t, env, c.SignArgs(key, image, legacy)...)
}

// Attest attaches an attestation of predicateType with the predicate in
// predicatePath to image, offline, like Sign.
func (c *Cosign) Attest(t testing.TB, key, image, predicateType, predicatePath string, legacy bool, env ...string) {
	t.Helper()
	args := []string{"attest", "--key", key, "--type", predicateType, "--predicate", predicatePath,
		"--tlog-upload=false", "--yes"}
	if c.V3() {
		args = append(args, "--use-signing-config=false")
		if legacy {
			args = append(args, "--new-bundle-format=false")
		}
	}
	args = append(args, registryFlags...)
	c.MustRun(t, env, append(args, image)...)
}

// verifyArgs are the offline key-based verify flags of c for the given format.
func (c *Cosign) verifyArgs(cmd, pub string, legacy bool) []string {
	args := []string{cmd, "--key", pub, "--insecure-ignore-tlog=true"}
	if c.V3() && legacy {
		args = append(args, "--new-bundle-format=false")
	}
	return append(args, registryFlags...)
}

// Verify runs an offline, key-based `cosign verify` of image with pub (a
// file or a KMS reference) and returns the output and exit code. v2 checks
// the legacy .sig tag. v3 checks bundles when there are any, else the .sig
// tag; when bundles exist but fail, it is run again on the .sig tag alone, so
// that Verify passes if either format verifies (signet writes .sig tags; an
// image can carry both).
func (c *Cosign) Verify(t testing.TB, pub, image string, env ...string) (string, int) {
	t.Helper()
	return c.verify(t, "verify", pub, image, nil, env)
}

// VerifyAttestation runs an offline, key-based `cosign verify-attestation`
// of image for predicateType, like Verify.
func (c *Cosign) VerifyAttestation(t testing.TB, pub, image, predicateType string, env ...string) (string, int) {
	t.Helper()
	return c.verify(t, "verify-attestation", pub, image, []string{"--type", predicateType}, env)
}

func (c *Cosign) verify(t testing.TB, cmd, pub, image string, extra, env []string) (string, int) {
	t.Helper()
	if !c.V3() {
		args := append(c.verifyArgs(cmd, pub, true), extra...)
		return c.Run(t, env, append(args, image)...)
	}
	args := append(c.verifyArgs(cmd, pub, false), extra...)
	out, code := c.Run(t, env, append(args, image)...)
	if code == 0 {
		return out, 0
	}
	args = append(c.verifyArgs(cmd, pub, true), extra...)
	out2, code2 := c.Run(t, env, append(args, image)...)
	if code2 == 0 {
		return out2, 0
	}
	return "bundle format: " + out + "\nlegacy format: " + out2, code2
}
