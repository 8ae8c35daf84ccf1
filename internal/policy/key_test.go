package policy_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/signet-dev/signet/internal/policy"
	"github.com/signet-dev/signet/internal/testenv"
)

// TestKMSKey resolves awskms:// keys against local-kms: the verifier checks a
// signature KMS made, an unknown alias fails at first use (not at parse
// time), and a verifier is fetched once and cached.
func TestKMSKey(t *testing.T) {
	testenv.AWSEnv(t)
	k := testenv.StartKMS(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	msg := []byte("signet policy key test")
	sum := sha256.Sum256(msg)
	out, err := k.Client.Sign(ctx, &kms.SignInput{
		KeyId:            &k.KeyARN,
		Message:          sum[:],
		MessageType:      kmstypes.MessageTypeDigest,
		SigningAlgorithm: kmstypes.SigningAlgorithmSpecEcdsaSha256,
	})
	if err != nil {
		t.Fatalf("signing with local-kms: %v", err)
	}

	for _, ref := range []string{k.KeyRef, "awskms:///" + k.KeyARN} {
		key, err := policy.ParseKey(ref)
		if err != nil {
			t.Fatalf("ParseKey(%q) = %v, want nil", ref, err)
		}
		v, err := key.Verifier(ctx)
		if err != nil {
			t.Fatalf("ParseKey(%q).Verifier() = %v, want nil", ref, err)
		}
		if err := v.VerifySignature(bytes.NewReader(out.Signature), bytes.NewReader(msg)); err != nil {
			t.Errorf("ParseKey(%q) verifier rejects a KMS signature: %v", ref, err)
		}
		if err := v.VerifySignature(bytes.NewReader(out.Signature), bytes.NewReader([]byte("other"))); err == nil {
			t.Errorf("ParseKey(%q) verifier accepts a signature over another message", ref)
		}
		v2, err := key.Verifier(ctx)
		if err != nil || v2 != v {
			t.Errorf("ParseKey(%q).Verifier() second call = %v, %v; want the cached verifier", ref, v2, err)
		}
	}

	missing, err := policy.ParseKey("awskms:///alias/does-not-exist")
	if err != nil {
		t.Fatalf("ParseKey(missing alias) = %v, want nil (no network at parse time)", err)
	}
	if v, err := missing.Verifier(ctx); err == nil {
		t.Errorf("Verifier() of a missing alias = %v, nil; want an error", v)
	}
}
