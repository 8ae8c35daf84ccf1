package oci

import (
	"context"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/google/go-containerregistry/pkg/authn"
)

// ECRAPI is the part of the ECR client the keychain uses.
type ECRAPI interface {
	GetAuthorizationToken(ctx context.Context, in *ecr.GetAuthorizationTokenInput, optFns ...func(*ecr.Options)) (*ecr.GetAuthorizationTokenOutput, error)
}

// ecrHost matches private ECR registries: ACCOUNT.dkr.ecr[-fips].REGION.amazonaws.com[.cn].
var ecrHost = regexp.MustCompile(`^[0-9]{12}\.dkr\.ecr(-fips)?\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$`)

// IsECR reports whether host is a private ECR registry.
func IsECR(host string) bool { return ecrHost.MatchString(host) }

// ECRKeychain authenticates to ECR with ecr:GetAuthorizationToken and keeps
// the token until shortly before it expires, across Lambda invocations.
// Other registries get anonymous access.
type ECRKeychain struct {
	api ECRAPI
	now func() time.Time

	mu    sync.Mutex
	cache map[string]ecrToken
}

type ecrToken struct {
	user, pass string
	expires    time.Time
}

var _ authn.ContextKeychain = (*ECRKeychain)(nil)

// NewECRKeychain returns a keychain that asks api for tokens.
func NewECRKeychain(api ECRAPI) *ECRKeychain {
	return &ECRKeychain{api: api, now: time.Now, cache: map[string]ecrToken{}}
}

// Resolve implements authn.Keychain.
func (k *ECRKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), r)
}

// ResolveContext implements authn.ContextKeychain.
func (k *ECRKeychain) ResolveContext(ctx context.Context, r authn.Resource) (authn.Authenticator, error) {
	host := r.RegistryStr()
	if !IsECR(host) {
		return authn.Anonymous, nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if t, ok := k.cache[host]; ok && k.now().Before(t.expires.Add(-5*time.Minute)) {
		return &authn.Basic{Username: t.user, Password: t.pass}, nil
	}
	out, err := k.api.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		return nil, fmt.Errorf("getting ECR authorization token for %s: %w", host, err)
	}
	if len(out.AuthorizationData) == 0 || out.AuthorizationData[0].AuthorizationToken == nil {
		return nil, fmt.Errorf("getting ECR authorization token for %s: empty answer", host)
	}
	ad := out.AuthorizationData[0]
	raw, err := base64.StdEncoding.DecodeString(*ad.AuthorizationToken)
	if err != nil {
		return nil, fmt.Errorf("decoding ECR authorization token: %w", err)
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return nil, fmt.Errorf("decoding ECR authorization token: no user:password")
	}
	t := ecrToken{user: user, pass: pass, expires: k.now().Add(time.Hour)}
	if ad.ExpiresAt != nil {
		t.expires = *ad.ExpiresAt
	}
	k.cache[host] = t
	return &authn.Basic{Username: user, Password: pass}, nil
}
