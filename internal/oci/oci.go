// Package oci is signet's registry I/O, built on go-containerregistry: it
// fetches pushed manifests by digest, tells images from signature artifacts,
// and appends signature and attestation layers to cosign's tags without ever
// dropping a layer someone else wrote.
package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ErrNotFound is returned when a manifest does not exist (anymore).
var ErrNotFound = errors.New("manifest not found")

// ErrImmutableTag is returned when the registry refuses to overwrite a tag,
// as ECR does for repositories with immutable tags.
var ErrImmutableTag = errors.New("tag is immutable")

// Client reads and writes one registry's manifests.
type Client struct {
	opts []remote.Option

	// A shared puller and pusher keep each repository's authenticated
	// transport, so calls after the first skip the registry ping and token
	// exchange. They are renewed well before an ECR token (12 h) expires.
	mu     sync.Mutex
	puller *remote.Puller
	pusher *remote.Pusher
	made   time.Time
}

// reuseFor is how long a puller and pusher are kept.
const reuseFor = 30 * time.Minute

// Option configures a Client.
type Option func(*options) error

type options struct {
	keychain  authn.Keychain
	transport http.RoundTripper
	userAgent string
	backoff   remote.Backoff
}

// WithKeychain sets how the client authenticates (default: anonymous).
func WithKeychain(k authn.Keychain) Option {
	return func(o *options) error { o.keychain = k; return nil }
}

// WithTransport sets the HTTP transport.
func WithTransport(t http.RoundTripper) Option {
	return func(o *options) error {
		if t == nil {
			return errors.New("nil transport")
		}
		o.transport = t
		return nil
	}
}

// WithUserAgent sets the User-Agent's signet part.
func WithUserAgent(ua string) Option {
	return func(o *options) error { o.userAgent = ua; return nil }
}

// WithBackoff sets the retry schedule for throttling (429) and server errors.
func WithBackoff(b remote.Backoff) Option {
	return func(o *options) error {
		if b.Steps < 1 {
			return fmt.Errorf("backoff needs at least one step, got %d", b.Steps)
		}
		o.backoff = b
		return nil
	}
}

// New returns a Client.
func New(opts ...Option) (*Client, error) {
	o := options{
		keychain:  authn.NewMultiKeychain(),
		transport: remote.DefaultTransport,
		userAgent: "signet",
		// ECR allows about 10 manifest PUTs a second per account and region:
		// back off on 429 for about 6 seconds in all, then hand the event back.
		backoff: remote.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Jitter: 0.3, Steps: 6},
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("configuring registry client: %w", err)
		}
	}
	return &Client{opts: []remote.Option{
		remote.WithAuthFromKeychain(o.keychain),
		remote.WithTransport(o.transport),
		remote.WithUserAgent(o.userAgent),
		remote.WithRetryBackoff(o.backoff),
		remote.WithRetryStatusCodes(http.StatusRequestTimeout, http.StatusTooManyRequests,
			http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout),
	}}, nil
}

func (c *Client) with(ctx context.Context) []remote.Option {
	opts := append([]remote.Option{remote.WithContext(ctx)}, c.opts...)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.puller == nil || time.Since(c.made) > reuseFor {
		pl, err1 := remote.NewPuller(c.opts...)
		ps, err2 := remote.NewPusher(c.opts...)
		if err1 != nil || err2 != nil {
			return opts // each call then makes its own transport
		}
		c.puller, c.pusher, c.made = pl, ps, time.Now()
	}
	return append(opts, remote.Reuse(c.puller), remote.Reuse(c.pusher))
}

// Options returns the client's remote options bound to ctx, for packages
// that read the registry themselves.
func (c *Client) Options(ctx context.Context) []remote.Option { return c.with(ctx) }

// Get fetches the manifest of ref, or returns ErrNotFound.
func (c *Client) Get(ctx context.Context, ref name.Digest) (*remote.Descriptor, error) {
	d, err := remote.Get(ref, c.with(ctx)...)
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("%s: %w", ref, ErrNotFound)
		}
		return nil, fmt.Errorf("fetching manifest %s: %w", ref, err)
	}
	return d, nil
}

func isNotFound(err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	if te.StatusCode == http.StatusNotFound {
		return true
	}
	for _, d := range te.Errors {
		if d.Code == transport.ManifestUnknownErrorCode || d.Code == transport.NameUnknownErrorCode {
			return true
		}
	}
	return false
}

func isImmutable(err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	for _, d := range te.Errors {
		// ECR answers TAG_INVALID "... cannot be overwritten because the repository is immutable."
		if d.Code == "TAG_INVALID" || strings.Contains(strings.ToLower(d.Message), "immutable") {
			return true
		}
	}
	return false
}

// Kind is what a manifest is, for signet's purposes.
type Kind int

// The kinds of manifest.
const (
	KindImage    Kind = iota // a runnable image: sign or verify it
	KindIndex                // an image index: act on it and its platform manifests
	KindArtifact             // a signature, attestation or other attached artifact: leave it alone
)

// Media types that mark sigstore and cosign artifacts.
var artifactMediaTypes = map[string]string{
	"application/vnd.dev.cosign.simplesigning.v1+json": "cosign signature",
	"application/vnd.dsse.envelope.v1+json":            "DSSE attestation",
	"application/vnd.in-toto+json":                     "in-toto attestation",
	"application/vnd.dev.cosign.artifact.sig.v1+json":  "cosign signature",
	"application/vnd.dev.cosign.artifact.sbom.v1+json": "cosign SBOM",
}

func artifactType(mt string) (string, bool) {
	if what, ok := artifactMediaTypes[mt]; ok {
		return what, true
	}
	if strings.HasPrefix(mt, "application/vnd.dev.sigstore.bundle") {
		return "sigstore bundle", true
	}
	return "", false
}

// manifest holds the fields of an image manifest or index that Classify reads.
type manifest struct {
	MediaType    string          `json:"mediaType"`
	ArtifactType string          `json:"artifactType"`
	Config       v1.Descriptor   `json:"config"`
	Layers       []v1.Descriptor `json:"layers"`
	Manifests    []v1.Descriptor `json:"manifests"`
	Subject      *v1.Descriptor  `json:"subject"`
}

// Classify tells an image or index from a signature artifact, from the
// manifest's content: layer, config and artifact media types, and a subject.
// The reason says what gave it away.
func Classify(mediaType types.MediaType, raw []byte) (Kind, string, error) {
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return 0, "", fmt.Errorf("decoding manifest: %w", err)
	}
	if what, ok := artifactType(m.ArtifactType); ok {
		return KindArtifact, fmt.Sprintf("artifactType %s (%s)", m.ArtifactType, what), nil
	}
	if what, ok := artifactType(string(m.Config.MediaType)); ok {
		return KindArtifact, fmt.Sprintf("config media type %s (%s)", m.Config.MediaType, what), nil
	}
	for _, l := range m.Layers {
		if what, ok := artifactType(string(l.MediaType)); ok {
			return KindArtifact, fmt.Sprintf("layer media type %s (%s)", l.MediaType, what), nil
		}
	}
	if m.Subject != nil {
		return KindArtifact, fmt.Sprintf("manifest refers to subject %s (an attached artifact)", m.Subject.Digest), nil
	}
	if mediaType.IsIndex() {
		// cosign's referrers fallback tag is an index of artifacts, not of platforms.
		if len(m.Manifests) > 0 {
			all := true
			for _, d := range m.Manifests {
				if _, ok := artifactType(d.ArtifactType); !ok {
					all = false
				}
			}
			if all {
				return KindArtifact, "index lists only sigstore artifacts (referrers fallback tag)", nil
			}
		}
		return KindIndex, "", nil
	}
	if !mediaType.IsImage() {
		return KindArtifact, fmt.Sprintf("media type %s is not an image", mediaType), nil
	}
	return KindImage, "", nil
}

// Layer is one existing layer of a tag: its content and annotations.
type Layer struct {
	Content     []byte
	Annotations map[string]string
	MediaType   types.MediaType
}

// AppendResult says what Append did.
type AppendResult struct {
	Digest v1.Hash // digest of the tag's manifest afterwards
	Added  bool    // false when an existing layer already matched
}

// maxLayer bounds what is read of a signature layer.
const maxLayer = 4 << 20

// Append adds the layer that makeLayer returns to the image at tag, creating
// the image if needed, unless has reports that one of the existing layers of
// mediaType already is what the new layer would be; makeLayer is then not
// called. Every existing layer is kept as it is.
func (c *Client) Append(ctx context.Context, tag name.Tag, mediaType types.MediaType, has func(Layer) bool, makeLayer func() (mutate.Addendum, error)) (AppendResult, error) {
	base, err := remote.Image(tag, c.with(ctx)...)
	switch {
	case err == nil:
		m, err := base.Manifest()
		if err != nil {
			return AppendResult{}, fmt.Errorf("reading %s: %w", tag, err)
		}
		for _, d := range m.Layers {
			if d.MediaType != mediaType {
				continue
			}
			l, err := base.LayerByDigest(d.Digest)
			if err != nil {
				return AppendResult{}, fmt.Errorf("reading layer %s of %s: %w", d.Digest, tag, err)
			}
			content, err := readLayer(l)
			if err != nil {
				return AppendResult{}, fmt.Errorf("reading layer %s of %s: %w", d.Digest, tag, err)
			}
			if has(Layer{Content: content, Annotations: d.Annotations, MediaType: d.MediaType}) {
				h, err := base.Digest()
				if err != nil {
					return AppendResult{}, err
				}
				return AppendResult{Digest: h}, nil
			}
		}
	case isNotFound(err):
		base = mutate.MediaType(mutate.ConfigMediaType(empty.Image, types.OCIConfigJSON), types.OCIManifestSchema1)
	default:
		return AppendResult{}, fmt.Errorf("reading %s: %w", tag, err)
	}
	add, err := makeLayer()
	if err != nil {
		return AppendResult{}, err
	}
	img, err := mutate.Append(base, add)
	if err != nil {
		return AppendResult{}, fmt.Errorf("adding layer to %s: %w", tag, err)
	}
	if err := remote.Write(tag, img, c.with(ctx)...); err != nil {
		if isImmutable(err) {
			return AppendResult{}, fmt.Errorf("writing %s: %w: %w", tag, ErrImmutableTag, err)
		}
		return AppendResult{}, fmt.Errorf("writing %s: %w", tag, err)
	}
	h, err := img.Digest()
	if err != nil {
		return AppendResult{}, err
	}
	return AppendResult{Digest: h, Added: true}, nil
}

func readLayer(l v1.Layer) ([]byte, error) {
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var b bytes.Buffer
	if _, err := io.Copy(&b, io.LimitReader(rc, maxLayer+1)); err != nil {
		return nil, err
	}
	if b.Len() > maxLayer {
		return nil, fmt.Errorf("layer larger than %d bytes", maxLayer)
	}
	return b.Bytes(), nil
}

// SignatureTag returns cosign's tag for a digest's signatures: sha256-<hex>.sig.
func SignatureTag(ref name.Digest) name.Tag { return suffixTag(ref, ".sig") }

// AttestationTag returns cosign's tag for a digest's attestations: sha256-<hex>.att.
func AttestationTag(ref name.Digest) name.Tag { return suffixTag(ref, ".att") }

func suffixTag(ref name.Digest, suffix string) name.Tag {
	return ref.Context().Tag(strings.Replace(ref.DigestStr(), ":", "-", 1) + suffix)
}
