package oci

import (
	"context"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// tokens answers GetAuthorizationToken like ECR and counts the calls.
type tokens struct {
	calls int
	err   error
	token string
	exp   time.Time
}

func (f *tokens) GetAuthorizationToken(context.Context, *ecr.GetAuthorizationTokenInput, ...func(*ecr.Options)) (*ecr.GetAuthorizationTokenOutput, error) {
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	return &ecr.GetAuthorizationTokenOutput{AuthorizationData: []ecrtypes.AuthorizationData{{
		AuthorizationToken: aws.String(f.token), ExpiresAt: aws.Time(f.exp),
	}}}, nil
}

func TestECRKeychain(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	api := &tokens{token: base64.StdEncoding.EncodeToString([]byte("AWS:secret")), exp: now.Add(12 * time.Hour)}
	k := NewECRKeychain(api)
	k.now = func() time.Time { return now }
	ecrRepo, _ := name.NewRepository("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/api")

	for range 3 {
		a, err := k.Resolve(ecrRepo)
		if err != nil {
			t.Fatal(err)
		}
		cfg, _ := a.Authorization()
		if cfg.Username != "AWS" || cfg.Password != "secret" {
			t.Fatalf("Resolve(ECR) = %+v, want AWS:secret", cfg)
		}
	}
	if api.calls != 1 {
		t.Errorf("GetAuthorizationToken called %d times for 3 resolves, want 1 (cached)", api.calls)
	}
	now = now.Add(12 * time.Hour) // expired: ask again
	if _, err := k.Resolve(ecrRepo); err != nil || api.calls != 2 {
		t.Errorf("after expiry: err %v, calls %d; want a new token", err, api.calls)
	}

	local, _ := name.NewRepository("127.0.0.1:5000/team/api")
	if a, err := k.Resolve(local); err != nil || a != authn.Anonymous {
		t.Errorf("Resolve(127.0.0.1) = %v, %v; want anonymous", a, err)
	}

	api.err = errors.New("AccessDeniedException")
	k2 := NewECRKeychain(api)
	if _, err := k2.Resolve(ecrRepo); err == nil {
		t.Errorf("Resolve with a failing token call succeeded")
	}
	api.err, api.token = nil, "not base64!"
	if _, err := NewECRKeychain(api).Resolve(ecrRepo); err == nil {
		t.Errorf("Resolve with a garbled token succeeded")
	}
}

func TestIsECR(t *testing.T) {
	tests := map[string]bool{
		"123456789012.dkr.ecr.us-east-1.amazonaws.com":      true,
		"123456789012.dkr.ecr-fips.us-east-1.amazonaws.com": true,
		"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn":  true,
		"public.ecr.aws":                                       false,
		"12345.dkr.ecr.us-east-1.amazonaws.com":                false,
		"123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.io": false,
		"127.0.0.1:5000":                                       false,
	}
	for host, want := range tests {
		if got := IsECR(host); got != want {
			t.Errorf("IsECR(%q) = %v, want %v", host, got, want)
		}
	}
}
