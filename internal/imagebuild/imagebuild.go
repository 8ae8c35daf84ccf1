// Package imagebuild builds signet's container image without Docker, the way
// ko does: `go build` of ./cmd/signet for each platform, one layer holding the
// binary, CA certificates and a nonroot user, an OCI image per platform and an
// OCI image index of them, pushed with go-containerregistry.
//
// The build is deterministic: file times, the creation time and the history
// are fixed, so the same sources, Go toolchain, version and CA bundle give the
// same digest.
package imagebuild

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Paths and identity inside the image.
const (
	BinaryPath  = "/usr/local/bin/signet"
	CACertsPath = "/etc/ssl/certs/ca-certificates.crt"
	NonrootUID  = 65532
)

// Package is the package built into the image, relative to the module root.
const Package = "./cmd/signet"

// DefaultSource is the org.opencontainers.image.source label.
const DefaultSource = "https://github.com/signet-dev/signet"

// Epoch is the time given to every file, the config and the history.
var Epoch = time.Unix(0, 0).UTC()

// DefaultPlatforms are the platforms built when none are given.
var DefaultPlatforms = []v1.Platform{
	{OS: "linux", Architecture: "amd64"},
	{OS: "linux", Architecture: "arm64", Variant: "v8"},
}

// Option sets an optional setting of Build.
type Option func(*options) error

type options struct {
	version string
	source  string
	caCerts string // path; "" means the first of caCertFiles that exists
}

// WithVersion sets the version linked into the binary
// (internal/version.Version) and the org.opencontainers.image.version label.
// The default is "dev".
func WithVersion(v string) Option {
	return func(o *options) error {
		if v == "" || strings.ContainsAny(v, " \t\n'\"\\") {
			return fmt.Errorf("version %q: want a non-empty word without spaces, quotes or backslashes", v)
		}
		o.version = v
		return nil
	}
}

// WithSource sets the org.opencontainers.image.source label.
func WithSource(url string) Option {
	return func(o *options) error {
		o.source = url
		return nil
	}
}

// WithCACertificates copies the PEM bundle at path into the image instead of
// the build machine's system bundle (the first of Go's Linux bundle paths that
// exists); "" keeps the system bundle.
func WithCACertificates(path string) Option {
	return func(o *options) error {
		o.caCerts = path
		return nil
	}
}

func makeOptions(opts []Option) (*options, error) {
	o := &options{version: "dev", source: DefaultSource}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// ParsePlatforms parses a comma-separated list such as
// "linux/amd64,linux/arm64". Only linux is supported; arm64 gets variant v8
// and arm v7 when none is given, as container runtimes normalise them.
func ParsePlatforms(s string) ([]v1.Platform, error) {
	var out []v1.Platform
	seen := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := v1.ParsePlatform(f)
		if err != nil {
			return nil, fmt.Errorf("platform %q: %w", f, err)
		}
		if _, err := goEnv(*p); err != nil {
			return nil, err
		}
		switch {
		case p.Architecture == "arm64" && p.Variant == "":
			p.Variant = "v8"
		case p.Architecture == "arm" && p.Variant == "":
			p.Variant = "v7"
		}
		if seen[p.String()] {
			return nil, fmt.Errorf("platform %q given twice", p)
		}
		seen[p.String()] = true
		out = append(out, *p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("platforms %q: none given", s)
	}
	return out, nil
}

// Build builds signet from the module in dir for each platform and returns
// the OCI image index of the images, in the order of platforms.
func Build(ctx context.Context, dir string, platforms []v1.Platform, opts ...Option) (v1.ImageIndex, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	if len(platforms) == 0 {
		return nil, errors.New("building the image: no platforms")
	}
	certs, err := readCACerts(o.caCerts)
	if err != nil {
		return nil, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range platforms {
		bin, err := goBuild(ctx, dir, p, o.version)
		if err != nil {
			return nil, err
		}
		img, err := image(p, bin, certs, o)
		if err != nil {
			return nil, fmt.Errorf("assembling the image for %s: %w", p, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        plainImage{img},
			Descriptor: v1.Descriptor{Platform: &p},
		})
	}
	return idx, nil
}

// plainImage is an image whose index descriptor has no artifactType:
// go-containerregistry would otherwise copy the config media type there, which
// marks an artifact, not a runnable image (Docker and BuildKit leave it out).
type plainImage struct{ v1.Image }

// ArtifactType is read by partial.Descriptor.
func (plainImage) ArtifactType() (string, error) { return "", nil }

// image makes the OCI image of one platform from its binary.
func image(p v1.Platform, bin, certs []byte, o *options) (v1.Image, error) {
	layer, err := rootLayer(bin, certs)
	if err != nil {
		return nil, err
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History: v1.History{
			Created:   v1.Time{Time: Epoch},
			CreatedBy: "signet-image: go build " + Package,
			Comment:   "signet binary, CA certificates, nonroot user",
		},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: Epoch}
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Config = v1.Config{
		Entrypoint: []string{BinaryPath},
		Cmd:        []string{"webhook"},
		User:       fmt.Sprintf("%d:%d", NonrootUID, NonrootUID),
		WorkingDir: "/",
		Env:        []string{"PATH=/usr/local/bin:/usr/bin:/bin"},
		Labels: map[string]string{
			"org.opencontainers.image.source":  o.source,
			"org.opencontainers.image.version": o.version,
		},
	}
	return mutate.ConfigFile(img, cf)
}

// Push writes idx, with its images, to ref and returns the index digest.
// opts are passed to remote.WriteIndex (credentials, transport).
func Push(ctx context.Context, ref name.Reference, idx v1.ImageIndex, opts ...remote.Option) (v1.Hash, error) {
	d, err := idx.Digest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("computing the index digest: %w", err)
	}
	opts = append([]remote.Option{remote.WithContext(ctx)}, opts...)
	if err := remote.WriteIndex(ref, idx, opts...); err != nil {
		return v1.Hash{}, fmt.Errorf("pushing %s: %w", ref, err)
	}
	return d, nil
}

// Pinned returns ref as given, with its tag if it has one, followed by
// @digest: the form to put in a manifest.
func Pinned(ref name.Reference, digest v1.Hash) string {
	if _, ok := ref.(name.Digest); ok {
		return ref.Context().String() + "@" + digest.String()
	}
	return ref.String() + "@" + digest.String()
}
