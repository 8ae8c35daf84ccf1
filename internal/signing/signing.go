// Package signing makes what signet writes next to an image: cosign
// simple-signing payloads and their signatures, and in-toto statements with a
// SLSA verification summary wrapped in DSSE envelopes, all signed by one
// KMS-backed key through sigstore's signature interfaces.
package signing

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/google/go-containerregistry/pkg/name"
	vsa "github.com/in-toto/attestation/go/predicates/vsa/v1"
	intoto "github.com/in-toto/attestation/go/v1"
	"github.com/sigstore/sigstore/pkg/signature"
	sigdsse "github.com/sigstore/sigstore/pkg/signature/dsse"
	awskms "github.com/sigstore/sigstore/pkg/signature/kms/aws"
	"github.com/sigstore/sigstore/pkg/signature/options"
	"github.com/sigstore/sigstore/pkg/signature/payload"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Media types, annotations and predicate types of cosign's formats.
const (
	SimpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	DSSEMediaType          = "application/vnd.dsse.envelope.v1+json"
	SignatureAnnotation    = "dev.cosignproject.cosign/signature"
	PredicateAnnotation    = "predicateType"
	InTotoPayloadType      = "application/vnd.in-toto+json"
	VSAPredicateType       = "https://slsa.dev/verification_summary/v1"
)

// Signer signs with one key. It is safe for concurrent use.
type Signer struct {
	sv       signature.SignerVerifier
	verifier signature.Verifier // local, with the public key: no KMS call
	keyID    string
	pub      crypto.PublicKey
	pem      []byte
}

// NewKMS returns a Signer for a KMS key reference such as
// awskms:///alias/NAME or awskms:///arn:aws:kms:REGION:ACCOUNT:key/ID. It
// reads the public key once, so a wrong key fails here, at cold start.
func NewKMS(ctx context.Context, keyRef string) (*Signer, error) {
	if err := awskms.ValidReference(keyRef); err != nil {
		return nil, fmt.Errorf("KMS key reference %q: %w", keyRef, err)
	}
	// KMS throttles Sign at scale: retry with backoff within ctx's deadline.
	sv, err := awskms.LoadSignerVerifier(ctx, keyRef,
		config.WithRetryMaxAttempts(8), config.WithRetryMode(aws.RetryModeAdaptive))
	if err != nil {
		return nil, fmt.Errorf("loading KMS key %s: %w", keyRef, err)
	}
	return New(ctx, sv, keyRef)
}

// New returns a Signer around any sigstore SignerVerifier, named keyID.
func New(ctx context.Context, sv signature.SignerVerifier, keyID string) (*Signer, error) {
	pub, err := sv.PublicKey(options.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("reading public key of %s: %w", keyID, err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encoding public key of %s: %w", keyID, err)
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("loading verifier for %s: %w", keyID, err)
	}
	return &Signer{sv: sv, verifier: v, keyID: keyID, pub: pub, pem: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})}, nil
}

// KeyID is the key reference the signer was made from.
func (s *Signer) KeyID() string { return s.keyID }

// PublicKeyPEM is the signer's public key, PEM encoded, as cosign --key takes it.
func (s *Signer) PublicKeyPEM() []byte { return s.pem }

// ImagePayload is the cosign simple-signing payload for ref, with
// docker-reference = registry/repository and docker-manifest-digest = digest.
func ImagePayload(ref name.Digest) ([]byte, error) {
	return json.Marshal(payload.Cosign{Image: ref})
}

// SignImage returns the simple-signing payload for ref and its signature,
// base64 encoded as cosign stores it in the layer annotation.
func (s *Signer) SignImage(ctx context.Context, ref name.Digest) (pl []byte, sigB64 string, err error) {
	pl, err = ImagePayload(ref)
	if err != nil {
		return nil, "", fmt.Errorf("making payload for %s: %w", ref, err)
	}
	sig, err := s.sv.SignMessage(bytes.NewReader(pl), options.WithContext(ctx))
	if err != nil {
		return nil, "", fmt.Errorf("signing %s with %s: %w", ref, s.keyID, err)
	}
	return pl, base64.StdEncoding.EncodeToString(sig), nil
}

// SignedImage reports whether pl is a simple-signing payload for ref whose
// base64 signature sigB64 verifies under this signer's key.
func (s *Signer) SignedImage(ctx context.Context, ref name.Digest, pl []byte, sigB64 string) bool {
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil {
		return false
	}
	var p payload.SimpleContainerImage
	if err := json.Unmarshal(pl, &p); err != nil || p.Critical.Image.DockerManifestDigest != ref.DigestStr() {
		return false
	}
	return s.verifier.VerifySignature(bytes.NewReader(sig), bytes.NewReader(pl), options.WithContext(ctx)) == nil
}

// Summary is what a verification summary attestation says.
type Summary struct {
	VerifierID string    // who verified: signet and its version
	Time       time.Time // when
	PolicyURI  string    // the policy applied, e.g. signet://policy/RULE
	Result     string    // PASSED or FAILED
	Levels     []string  // verified levels, e.g. SLSA_BUILD_LEVEL_0 ... optional
}

// Statement returns an in-toto Statement v1 about ref with a SLSA
// Verification Summary v1 predicate.
func Statement(ref name.Digest, sum Summary) ([]byte, error) {
	algo, hexDigest, ok := strings.Cut(ref.DigestStr(), ":")
	if !ok {
		return nil, fmt.Errorf("digest %q has no algorithm", ref.DigestStr())
	}
	levels := sum.Levels
	if len(levels) == 0 {
		levels = []string{"SLSA_BUILD_LEVEL_0"}
	}
	pred := &vsa.VerificationSummary{
		Verifier:           &vsa.VerificationSummary_Verifier{Id: sum.VerifierID},
		TimeVerified:       timestamppb.New(sum.Time.UTC().Truncate(time.Second)),
		ResourceUri:        ref.Context().Name() + "@" + ref.DigestStr(),
		Policy:             &vsa.VerificationSummary_Policy{Uri: sum.PolicyURI},
		VerificationResult: sum.Result,
		VerifiedLevels:     levels,
	}
	pj, err := protojson.Marshal(pred)
	if err != nil {
		return nil, fmt.Errorf("encoding verification summary: %w", err)
	}
	predStruct := &structpb.Struct{}
	if err := protojson.Unmarshal(pj, predStruct); err != nil {
		return nil, fmt.Errorf("encoding verification summary: %w", err)
	}
	st := &intoto.Statement{
		Type: intoto.StatementTypeUri,
		Subject: []*intoto.ResourceDescriptor{{
			Name:   ref.Context().Name(),
			Digest: map[string]string{algo: hexDigest},
		}},
		PredicateType: VSAPredicateType,
		Predicate:     predStruct,
	}
	if err := st.Validate(); err != nil {
		return nil, fmt.Errorf("invalid statement for %s: %w", ref, err)
	}
	return protojson.Marshal(st)
}

// Attest wraps statement in a DSSE envelope signed by this key.
func (s *Signer) Attest(ctx context.Context, statement []byte) ([]byte, error) {
	env, err := sigdsse.WrapSigner(s.sv, InTotoPayloadType).SignMessage(bytes.NewReader(statement), options.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("signing attestation with %s: %w", s.keyID, err)
	}
	return env, nil
}

// AttestedImage reports whether envelope is a DSSE envelope signed by this
// key over an in-toto statement with predicateType about ref's digest.
func (s *Signer) AttestedImage(ctx context.Context, ref name.Digest, envelope []byte, predicateType string) bool {
	var pl []byte
	v := sigdsse.WrapVerifier(s.verifier, sigdsse.WithDecodedPayload(&pl), sigdsse.WithExpectedPayloadType(InTotoPayloadType))
	if err := v.VerifySignature(bytes.NewReader(envelope), nil, options.WithContext(ctx)); err != nil {
		return false
	}
	var st struct {
		PredicateType string `json:"predicateType"`
		Subject       []struct {
			Digest map[string]string `json:"digest"`
		} `json:"subject"`
	}
	if err := json.Unmarshal(pl, &st); err != nil || st.PredicateType != predicateType {
		return false
	}
	algo, hexDigest, _ := strings.Cut(ref.DigestStr(), ":")
	for _, sub := range st.Subject {
		if sub.Digest[algo] == hexDigest {
			return true
		}
	}
	return false
}
