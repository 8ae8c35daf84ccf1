package imagebuild_test

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/signet-dev/signet/internal/imagebuild"
	"github.com/signet-dev/signet/internal/testenv"
)

const testVersion = "v0.0.0-imagebuild-test"

var (
	buildOnce sync.Once
	built     v1.ImageIndex
	buildErr  error
)

// build builds signet for DefaultPlatforms once per test binary: two
// `go build`s take a minute or more on a small machine.
func build(t *testing.T) v1.ImageIndex {
	t.Helper()
	if testing.Short() {
		t.Skip("builds signet for two platforms; skipped with -short")
	}
	buildOnce.Do(func() { built, buildErr = buildNow() })
	if buildErr != nil {
		t.Fatalf("Build: %v", buildErr)
	}
	return built
}

func buildNow() (v1.ImageIndex, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	idx, err := imagebuild.Build(ctx, testenv.Root(), imagebuild.DefaultPlatforms, imagebuild.WithVersion(testVersion))
	if err != nil {
		return nil, err
	}
	// Compute every digest now, while nothing else competes for the CPUs.
	_, err = idx.Digest()
	return idx, err
}

func TestBuildPush(t *testing.T) {
	idx := build(t)
	ref, err := name.ParseReference(testenv.Registry(t) + "/signet/webhook:dev")
	if err != nil {
		t.Fatal(err)
	}
	d, err := imagebuild.Push(context.Background(), ref, idx)
	if err != nil {
		t.Fatalf("Push(%s): %v", ref, err)
	}
	if got, want := imagebuild.Pinned(ref, d), ref.String()+"@"+d.String(); got != want {
		t.Errorf("Pinned = %q, want %q", got, want)
	}
	head, err := remote.Head(ref)
	if err != nil {
		t.Fatalf("reading tag %s back: %v", ref, err)
	}
	if head.Digest != d || head.MediaType != types.OCIImageIndex {
		t.Errorf("tag %s = %s %s, want %s %s", ref, head.MediaType, head.Digest, types.OCIImageIndex, d)
	}

	pushed, err := remote.Index(ref.Context().Digest(d.String()))
	if err != nil {
		t.Fatal(err)
	}
	im, err := pushed.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 2 {
		t.Fatalf("index has %d manifests, want 2", len(im.Manifests))
	}
	machines := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
	for i, want := range imagebuild.DefaultPlatforms {
		desc := im.Manifests[i]
		t.Run(want.String(), func(t *testing.T) {
			if desc.Platform == nil || !desc.Platform.Equals(want) {
				t.Fatalf("manifest %d platform = %v, want %v", i, desc.Platform, want)
			}
			if desc.MediaType != types.OCIManifestSchema1 || desc.ArtifactType != "" {
				t.Errorf("manifest media type %s, artifact type %q; want %s and none (an image, not an artifact)", desc.MediaType, desc.ArtifactType, types.OCIManifestSchema1)
			}
			img, err := remote.Image(ref.Context().Digest(desc.Digest.String()))
			if err != nil {
				t.Fatal(err)
			}
			checkConfig(t, img, want)
			files := readLayer(t, img)
			checkFiles(t, files)
			bin := files["usr/local/bin/signet"].data
			checkELF(t, bin, machines[want.Architecture])
			checkBuildInfo(t, bin, want)
		})
	}
}

func checkConfig(t *testing.T, img v1.Image, p v1.Platform) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	checks := []struct{ what, got, want string }{
		{"os", cf.OS, p.OS},
		{"architecture", cf.Architecture, p.Architecture},
		{"variant", cf.Variant, p.Variant},
		{"entrypoint", strings.Join(c.Entrypoint, " "), "/usr/local/bin/signet"},
		{"cmd", strings.Join(c.Cmd, " "), "webhook"},
		{"user", c.User, "65532:65532"},
		{"working dir", c.WorkingDir, "/"},
		{"source label", c.Labels["org.opencontainers.image.source"], imagebuild.DefaultSource},
		{"version label", c.Labels["org.opencontainers.image.version"], testVersion},
		{"created", cf.Created.UTC().Format(time.RFC3339), "1970-01-01T00:00:00Z"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("config %s = %q, want %q", ch.what, ch.got, ch.want)
		}
	}
	if got := len(c.Entrypoint); got != 1 {
		t.Errorf("entrypoint has %d elements, want 1", got)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.MediaType != types.OCIConfigJSON || len(m.Layers) != 1 || m.Layers[0].MediaType != types.OCILayer {
		t.Errorf("manifest config %s with %d layers, want %s with one %s layer", m.Config.MediaType, len(m.Layers), types.OCIConfigJSON, types.OCILayer)
	}
}

type file struct {
	hdr  *tar.Header
	data []byte
}

// readLayer reads the image's layers' tar entries, by name.
func readLayer(t *testing.T, img v1.Image) map[string]file {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]file{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("reading the layer: %v", err)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[strings.TrimSuffix(h.Name, "/")] = file{h, b}
		}
		rc.Close()
	}
	return files
}

func checkFiles(t *testing.T, files map[string]file) {
	t.Helper()
	certs, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		t.Skipf("no system CA bundle to compare with: %v", err)
	}
	for name, f := range files {
		if !f.hdr.ModTime.Equal(imagebuild.Epoch) {
			t.Errorf("%s mtime = %v, want %v", name, f.hdr.ModTime, imagebuild.Epoch)
		}
	}
	tests := []struct {
		name     string
		mode     int64
		uid      int
		contains string
	}{
		{"usr/local/bin/signet", 0o755, 0, "\x7fELF"},
		{"etc/ssl/certs/ca-certificates.crt", 0o644, 0, string(certs)},
		{"etc/passwd", 0o644, 0, "nonroot:x:65532:65532:"},
		{"etc/group", 0o644, 0, "nonroot:x:65532:"},
		{"home/nonroot", 0o700, 65532, ""},
	}
	for _, tc := range tests {
		f, ok := files[tc.name]
		if !ok {
			t.Errorf("layer has no %s", tc.name)
			continue
		}
		if f.hdr.Mode != tc.mode || f.hdr.Uid != tc.uid {
			t.Errorf("%s mode %o uid %d, want %o uid %d", tc.name, f.hdr.Mode, f.hdr.Uid, tc.mode, tc.uid)
		}
		if !strings.Contains(string(f.data), tc.contains) {
			t.Errorf("%s does not hold %.40q", tc.name, tc.contains)
		}
	}
}

// checkELF checks that bin is a static 64-bit ELF executable for machine.
func checkELF(t *testing.T, bin []byte, machine elf.Machine) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		t.Fatalf("the binary is not ELF: %v", err)
	}
	defer f.Close()
	if f.Machine != machine || f.Class != elf.ELFCLASS64 || f.Type != elf.ET_EXEC {
		t.Errorf("ELF machine %v class %v type %v, want %v %v %v", f.Machine, f.Class, f.Type, machine, elf.ELFCLASS64, elf.ET_EXEC)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("the binary asks for a dynamic loader; want a static binary (CGO_ENABLED=0)")
		}
	}
}

// checkBuildInfo checks how the binary was built, from the build information
// Go embeds (kept by -s -w), and its version.
func checkBuildInfo(t *testing.T, bin []byte, p v1.Platform) {
	t.Helper()
	bi, err := buildinfo.Read(bytes.NewReader(bin))
	if err != nil {
		t.Fatalf("reading build info: %v", err)
	}
	if bi.Path != "github.com/signet-dev/signet/cmd/signet" {
		t.Errorf("binary's main package = %q, want github.com/signet-dev/signet/cmd/signet", bi.Path)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	for k, want := range map[string]string{"CGO_ENABLED": "0", "GOOS": p.OS, "GOARCH": p.Architecture, "-trimpath": "true"} {
		if settings[k] != want {
			t.Errorf("build setting %s = %q, want %q", k, settings[k], want)
		}
	}
	// -trimpath keeps -ldflags out of the build info: run the binary when this
	// machine can, else look for the version in it.
	if p.OS != runtime.GOOS || p.Architecture != runtime.GOARCH {
		if !bytes.Contains(bin, []byte(testVersion)) {
			t.Errorf("the binary does not hold the version %q", testVersion)
		}
		return
	}
	path := filepath.Join(t.TempDir(), "signet")
	if err := os.WriteFile(path, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(path, "version").CombinedOutput()
	if got := strings.TrimSpace(string(out)); err != nil || got != testVersion {
		t.Errorf("signet version = %q, %v; want %q", got, err, testVersion)
	}
}

func TestBuildReproducible(t *testing.T) {
	first := build(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	second, err := imagebuild.Build(ctx, testenv.Root(), imagebuild.DefaultPlatforms, imagebuild.WithVersion(testVersion))
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	d1, err := first.Digest()
	if err != nil {
		t.Fatal(err)
	}
	d2, err := second.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if d1 != d2 {
		m1, _ := first.RawManifest()
		m2, _ := second.RawManifest()
		t.Errorf("two builds of the same sources: index digests %s and %s, want equal\nfirst:  %s\nsecond: %s", d1, d2, m1, m2)
	}
}

func TestParsePlatforms(t *testing.T) {
	amd64 := v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64 := v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	tests := []struct {
		in      string
		want    []v1.Platform
		wantErr bool
	}{
		{in: "linux/amd64,linux/arm64", want: []v1.Platform{amd64, arm64}},
		{in: " linux/arm64/v8 , linux/amd64 ", want: []v1.Platform{arm64, amd64}},
		{in: "linux/arm", want: []v1.Platform{{OS: "linux", Architecture: "arm", Variant: "v7"}}},
		{in: "linux/amd64/v3", want: []v1.Platform{{OS: "linux", Architecture: "amd64", Variant: "v3"}}},
		{in: "linux/arm64,linux/arm64/v8", wantErr: true},
		{in: "darwin/arm64", wantErr: true},
		{in: "linux/arm64/v9", wantErr: true},
		{in: "linux/amd64/v5", wantErr: true},
		{in: "linux/riscv64/x", wantErr: true},
		{in: "", wantErr: true},
		{in: ",", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := imagebuild.ParsePlatforms(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Errorf("ParsePlatforms(%q) = %v, want an error", tc.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePlatforms(%q): %v", tc.in, err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("ParsePlatforms(%q) = %v, want %v", tc.in, got, tc.want)
			}
			for i := range got {
				if !got[i].Equals(tc.want[i]) {
					t.Errorf("ParsePlatforms(%q)[%d] = %v, want %v", tc.in, i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestPinned(t *testing.T) {
	d := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	tests := []struct{ ref, want string }{
		{"127.0.0.1:5000/signet/webhook:dev", "127.0.0.1:5000/signet/webhook:dev@" + d.String()},
		{"123456789012.dkr.ecr.us-east-1.amazonaws.com/signet-webhook", "123456789012.dkr.ecr.us-east-1.amazonaws.com/signet-webhook@" + d.String()},
		{"registry.local/a@sha256:" + strings.Repeat("cd", 32), "registry.local/a@" + d.String()},
	}
	for _, tc := range tests {
		ref, err := name.ParseReference(tc.ref)
		if err != nil {
			t.Fatal(err)
		}
		if got := imagebuild.Pinned(ref, d); got != tc.want {
			t.Errorf("Pinned(%q) = %q, want %q", tc.ref, got, tc.want)
		}
	}
}
