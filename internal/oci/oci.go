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

// ErrNotSignatureImage is returned when a cosign tag holds something other
// than a signature image of the expected layer media type: signet will not
// overwrite it.
var ErrNotSignatureImage = errors.New("tag does not hold a cosign signature image")

// ErrTagChanging is returned when a tag kept changing under signet while it
// was being updated; it is transient.
var ErrTagChanging = errors.New("tag kept changing during the update")

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

// maxLayer bounds what is read of a signature layer; larger layers are
// nobody's signature that signet needs to read, and are kept unread.
const maxLayer = 4 << 20

// maxUpdates bounds the read-modify-write attempts on a changing tag.
const maxUpdates = 5

// sigImage is a cosign tag's current content.
type sigImage struct {
	img    v1.Image
	digest v1.Hash // zero when the tag does not exist
	layers []v1.Descriptor
}

// readSig reads tag, checking it is a signature image whose layers all
// have mediaType. A missing tag is an empty OCI image.
func (c *Client) readSig(ctx context.Context, tag name.Tag, mediaType types.MediaType) (sigImage, error) {
	d, err := remote.Get(tag, c.with(ctx)...)
	if isNotFound(err) {
		return sigImage{img: mutate.MediaType(mutate.ConfigMediaType(empty.Image, types.OCIConfigJSON), types.OCIManifestSchema1)}, nil
	}
	if err != nil {
		return sigImage{}, fmt.Errorf("reading %s: %w", tag, err)
	}
	if !d.MediaType.IsImage() {
		return sigImage{}, fmt.Errorf("%s is a %s: %w", tag, d.MediaType, ErrNotSignatureImage)
	}
	img, err := d.Image()
	if err != nil {
		return sigImage{}, fmt.Errorf("reading %s: %w", tag, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return sigImage{}, fmt.Errorf("reading %s: %w", tag, err)
	}
	for _, l := range m.Layers {
		if l.MediaType != mediaType {
			return sigImage{}, fmt.Errorf("%s has a layer of media type %s, not %s: %w", tag, l.MediaType, mediaType, ErrNotSignatureImage)
		}
	}
	return sigImage{img: img, digest: d.Digest, layers: m.Layers}, nil
}

// each calls fn for every readable layer of s, until fn returns true.
func (s sigImage) each(fn func(Layer) bool) (bool, error) {
	for _, d := range s.layers {
		if d.Size > maxLayer {
			continue
		}
		l, err := s.img.LayerByDigest(d.Digest)
		if err != nil {
			return false, fmt.Errorf("reading layer %s: %w", d.Digest, err)
		}
		content, err := readLayer(l)
		if err != nil {
			return false, fmt.Errorf("reading layer %s: %w", d.Digest, err)
		}
		if fn(Layer{Content: content, Annotations: d.Annotations, MediaType: d.MediaType}) {
			return true, nil
		}
	}
	return false, nil
}

// write replaces tag with img unless the tag changed since it was read as
// was: the registry has no compare-and-swap, so the check narrows, and cannot
// close, the window in which a concurrent writer's layer could be lost.
func (c *Client) write(ctx context.Context, tag name.Tag, was v1.Hash, img v1.Image) (bool, error) {
	d, err := remote.Head(tag, c.with(ctx)...)
	switch {
	case isNotFound(err):
		if was != (v1.Hash{}) {
			return false, nil
		}
	case err != nil:
		return false, fmt.Errorf("checking %s: %w", tag, err)
	case d.Digest != was:
		return false, nil
	}
	if err := remote.Write(tag, img, c.with(ctx)...); err != nil {
		if isImmutable(err) {
			return false, fmt.Errorf("writing %s: %w: %w", tag, ErrImmutableTag, err)
		}
		return false, fmt.Errorf("writing %s: %w", tag, err)
	}
	return true, nil
}

// Append adds the layer that makeLayer returns to the signature image at
// tag, creating it if needed, unless has reports that one of its layers
// already is what the new layer would be; makeLayer is then not called.
// Every existing layer is kept as it is. A tag holding anything but a
// signature image of mediaType layers is left alone: ErrNotSignatureImage.
func (c *Client) Append(ctx context.Context, tag name.Tag, mediaType types.MediaType, has func(Layer) bool, makeLayer func() (mutate.Addendum, error)) (AppendResult, error) {
	var add *mutate.Addendum
	for range maxUpdates {
		cur, err := c.readSig(ctx, tag, mediaType)
		if err != nil {
			return AppendResult{}, err
		}
		found, err := cur.each(has)
		if err != nil {
			return AppendResult{}, fmt.Errorf("reading %s: %w", tag, err)
		}
		if found {
			return AppendResult{Digest: cur.digest}, nil
		}
		if add == nil {
			a, err := makeLayer()
			if err != nil {
				return AppendResult{}, err
			}
			add = &a
		}
		img, err := mutate.Append(cur.img, *add)
		if err != nil {
			return AppendResult{}, fmt.Errorf("adding layer to %s: %w", tag, err)
		}
		ok, err := c.write(ctx, tag, cur.digest, img)
		if err != nil {
			return AppendResult{}, err
		}
		if !ok {
			continue // someone wrote the tag meanwhile: start again from theirs
		}
		h, err := img.Digest()
		if err != nil {
			return AppendResult{}, err
		}
		return AppendResult{Digest: h, Added: true}, nil
	}
	return AppendResult{}, fmt.Errorf("appending to %s: %w", tag, ErrTagChanging)
}

// Remove takes the layers for which mine reports true out of the signature
// image at tag, keeping every other layer as it is, and returns how many it
// removed. signet uses it to withdraw its own signature from a digest it
// rejected.
func (c *Client) Remove(ctx context.Context, tag name.Tag, mediaType types.MediaType, mine func(Layer) bool) (int, error) {
	for range maxUpdates {
		cur, err := c.readSig(ctx, tag, mediaType)
		if err != nil {
			return 0, err
		}
		if cur.digest == (v1.Hash{}) {
			return 0, nil
		}
		var keep []mutate.Addendum
		removed := 0
		for _, d := range cur.layers {
			l, err := cur.img.LayerByDigest(d.Digest)
			if err != nil {
				return 0, fmt.Errorf("reading layer %s of %s: %w", d.Digest, tag, err)
			}
			if d.Size <= maxLayer {
				content, err := readLayer(l)
				if err != nil {
					return 0, fmt.Errorf("reading layer %s of %s: %w", d.Digest, tag, err)
				}
				if mine(Layer{Content: content, Annotations: d.Annotations, MediaType: d.MediaType}) {
					removed++
					continue
				}
			}
			keep = append(keep, mutate.Addendum{Layer: l, MediaType: d.MediaType, Annotations: d.Annotations})
		}
		if removed == 0 {
			return 0, nil
		}
		img, err := mutate.Append(mutate.MediaType(mutate.ConfigMediaType(empty.Image, types.OCIConfigJSON), types.OCIManifestSchema1), keep...)
		if err != nil {
			return 0, fmt.Errorf("rebuilding %s: %w", tag, err)
		}
		ok, err := c.write(ctx, tag, cur.digest, img)
		if err != nil {
			return 0, err
		}
		if ok {
			return removed, nil
		}
	}
	return 0, fmt.Errorf("removing from %s: %w", tag, ErrTagChanging)
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
