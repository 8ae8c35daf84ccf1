// Package ecrauth authenticates to Amazon ECR registries with
// ecr:GetAuthorizationToken, as a go-containerregistry keychain, for the
// signer and for the CLI and webhook.
package ecrauth

import (
	"context"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/google/go-containerregistry/pkg/authn"
)

// ecrHost matches Amazon ECR private registry hosts:
// ACCOUNT.dkr.ecr[-fips].REGION.amazonaws.com[.cn].
var ecrHost = regexp.MustCompile(`^([0-9]{12})\.dkr\.ecr(-fips)?\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$`)

// IsECR reports whether host is a private ECR registry.
func IsECR(host string) bool { return ecrHost.MatchString(host) }

// ECRRegion returns the region of an Amazon ECR registry host, and false for
// any other host.
func ECRRegion(host string) (string, bool) {
	m := ecrHost.FindStringSubmatch(host)
	if m == nil {
		return "", false
	}
	return m[3], true
}

// ECRAPI is the part of the ECR client the keychain uses.
type ECRAPI interface {
	GetAuthorizationToken(ctx context.Context, in *ecr.GetAuthorizationTokenInput, optFns ...func(*ecr.Options)) (*ecr.GetAuthorizationTokenOutput, error)
}

// Keychain gives credentials for Amazon ECR registries from
// ecr:GetAuthorizationToken, one token per region, kept until shortly before
// it expires; for other registries it gives authn.Anonymous, so it composes
// with authn.NewMultiKeychain.
type Keychain struct {
	client func(region string) ECRAPI
	now    func() time.Time

	mu     sync.Mutex
	tokens map[string]ecrToken // by region
}

type ecrToken struct {
	user, pass string
	expires    time.Time
}

var _ authn.ContextKeychain = (*Keychain)(nil)

// NewKeychain returns a keychain that asks ECR with cfg's credentials, in
// the region of each registry. optFns configure the ECR clients.
func NewKeychain(cfg aws.Config, optFns ...func(*ecr.Options)) *Keychain {
	return &Keychain{
		client: func(region string) ECRAPI {
			return ecr.NewFromConfig(cfg, append([]func(*ecr.Options){func(o *ecr.Options) { o.Region = region }}, optFns...)...)
		},
		now:    time.Now,
		tokens: map[string]ecrToken{},
	}
}

// Resolve implements authn.Keychain.
func (k *Keychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), r)
}

// ResolveContext implements authn.ContextKeychain.
func (k *Keychain) ResolveContext(ctx context.Context, r authn.Resource) (authn.Authenticator, error) {
	region, ok := ECRRegion(r.RegistryStr())
	if !ok {
		return authn.Anonymous, nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if t, ok := k.tokens[region]; ok && k.now().Before(t.expires) {
		return &authn.Basic{Username: t.user, Password: t.pass}, nil
	}
	out, err := k.client(region).GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		return nil, fmt.Errorf("getting an ECR token for %s: %w", r.RegistryStr(), err)
	}
	if len(out.AuthorizationData) == 0 || out.AuthorizationData[0].AuthorizationToken == nil {
		return nil, fmt.Errorf("getting an ECR token for %s: empty answer", r.RegistryStr())
	}
	d := out.AuthorizationData[0]
	raw, err := base64.StdEncoding.DecodeString(*d.AuthorizationToken)
	if err != nil {
		return nil, fmt.Errorf("decoding the ECR token for %s: %w", r.RegistryStr(), err)
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return nil, fmt.Errorf("decoding the ECR token for %s: no user:password", r.RegistryStr())
	}
	t := ecrToken{user: user, pass: pass, expires: k.now().Add(time.Hour)}
	if d.ExpiresAt != nil {
		t.expires = d.ExpiresAt.Add(-5 * time.Minute)
	}
	k.tokens[region] = t
	return &authn.Basic{Username: user, Password: pass}, nil
}
