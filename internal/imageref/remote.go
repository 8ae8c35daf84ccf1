package imageref

import (
	"context"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// RemoteResolver resolves tags with a HEAD request to the registry (a GET
// where the registry does not answer HEAD), through go-containerregistry.
// Registries on loopback and private addresses are reached over plain HTTP.
type RemoteResolver struct {
	keychain  authn.Keychain
	transport http.RoundTripper
}

var _ Resolver = (*RemoteResolver)(nil)

// ResolverOption configures a RemoteResolver.
type ResolverOption func(*RemoteResolver)

// WithKeychain sets where registry credentials come from
// (default authn.DefaultKeychain: docker config and credential helpers).
func WithKeychain(k authn.Keychain) ResolverOption {
	return func(r *RemoteResolver) { r.keychain = k }
}

// WithTransport sets the HTTP transport (default remote.DefaultTransport).
func WithTransport(t http.RoundTripper) ResolverOption {
	return func(r *RemoteResolver) { r.transport = t }
}

// NewRemoteResolver returns a resolver that asks the registry.
func NewRemoteResolver(opts ...ResolverOption) *RemoteResolver {
	r := &RemoteResolver{keychain: authn.DefaultKeychain, transport: remote.DefaultTransport}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Resolve returns the digest ref's tag points at; a pinned ref is returned as is.
func (r *RemoteResolver) Resolve(ctx context.Context, ref Ref) (string, error) {
	if ref.Digest != "" {
		return ref.Digest, nil
	}
	n := ref.Name()
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(r.keychain),
		remote.WithTransport(r.transport),
	}
	desc, err := remote.Head(n, opts...)
	if err == nil {
		return desc.Digest.String(), nil
	}
	if ctx.Err() != nil {
		return "", fmt.Errorf("resolving %s: %w", n, err)
	}
	// Some registries do not answer HEAD for manifests; try GET once.
	gd, gerr := remote.Get(n, opts...)
	if gerr != nil {
		return "", fmt.Errorf("resolving %s: %w", n, gerr)
	}
	return gd.Digest.String(), nil
}
