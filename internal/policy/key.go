package policy

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/kms"
	awskms "github.com/sigstore/sigstore/pkg/signature/kms/aws"
	"github.com/sigstore/sigstore/pkg/signature/options"
)

// Key is a trusted key of a verify rule.
type Key interface {
	// ID identifies the key in verdicts: the awskms:// reference as written,
	// or "sha256:<hex>" of the DER (PKIX) public key for a PEM key.
	ID() string
	// Verifier returns a verifier for the key's signatures (SHA-256 digests,
	// as cosign uses). A KMS key fetches its public key on the first call,
	// which can fail like any network call; the result is cached.
	Verifier(ctx context.Context) (signature.Verifier, error)
}

var (
	_ Key = (*PEMKey)(nil)
	_ Key = (*KMSKey)(nil)
)

// ParseKey reads one key as written in a policy: a PEM public key, or an
// AWS KMS key reference (awskms:///alias/NAME, awskms:///KEY-ID,
// awskms:///arn:aws:kms:REGION:ACCOUNT:key/KEY-ID or .../alias/NAME).
func ParseKey(s string) (Key, error) {
	t := strings.TrimSpace(s)
	switch {
	case strings.HasPrefix(t, awskms.ReferenceScheme):
		return NewKMSKey(t)
	case strings.Contains(t, "://"):
		return nil, fmt.Errorf("%q is not an awskms:// key reference (other KMS providers are not supported)", t)
	default:
		return NewPEMKey([]byte(t))
	}
}

// PEMKey is a public key given inline as PEM.
type PEMKey struct {
	id       string
	pub      crypto.PublicKey
	verifier signature.Verifier
}

// NewPEMKey parses one PEM block of type PUBLIC KEY (PKIX) or RSA PUBLIC KEY
// (PKCS #1) holding an ECDSA (P-256, P-384, P-521), Ed25519 or RSA (2048 to
// 4096 bits) key.
func NewPEMKey(data []byte) (*PEMKey, error) {
	data = bytes.TrimSpace(data)
	block, rest := pem.Decode(data)
	if block == nil || !bytes.HasPrefix(data, []byte("-----BEGIN ")) {
		return nil, errors.New("not a PEM public key")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("more than one PEM block, or data after the PEM block")
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pem.EncodeToMemory(block))
	if err != nil {
		return nil, fmt.Errorf("not a PEM public key: %w", err)
	}
	//nolint:staticcheck // ValidatePubKey is deprecated but still the check we want.
	if err := cryptoutils.ValidatePubKey(pub); err != nil {
		return nil, fmt.Errorf("unsupported public key: %w", err)
	}
	der, err := cryptoutils.MarshalPublicKeyToDER(pub)
	if err != nil {
		return nil, fmt.Errorf("encoding public key: %w", err)
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("unsupported public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return &PEMKey{id: "sha256:" + hex.EncodeToString(sum[:]), pub: pub, verifier: v}, nil
}

// ID returns "sha256:<hex>" of the DER public key.
func (k *PEMKey) ID() string { return k.id }

// PublicKey returns the parsed key.
func (k *PEMKey) PublicKey() crypto.PublicKey { return k.pub }

// Verifier returns the key's verifier; it never fails.
func (k *PEMKey) Verifier(context.Context) (signature.Verifier, error) { return k.verifier, nil }

// aliasRE is the form AWS allows for alias names (after "alias/").
var aliasRE = regexp.MustCompile(`alias/[a-zA-Z0-9/_-]+$`)

// KMSKey is an AWS KMS key, named by reference, whose public key is fetched
// on first use.
type KMSKey struct {
	ref string

	mu       sync.Mutex
	verifier signature.Verifier
}

// NewKMSKey checks the form of an awskms:// reference; it does not call AWS.
func NewKMSKey(ref string) (*KMSKey, error) {
	if err := awskms.ValidReference(ref); err != nil {
		return nil, fmt.Errorf("bad KMS key reference %q: %w", ref, err)
	}
	if strings.Contains(ref, "alias/") && !aliasRE.MatchString(ref) {
		return nil, fmt.Errorf("bad KMS key reference %q: alias names hold only letters, digits, '/', '_' and '-'", ref)
	}
	return &KMSKey{ref: ref}, nil
}

// ID returns the reference as written.
func (k *KMSKey) ID() string { return k.ref }

// Verifier fetches the KMS key's public key on the first successful call
// (kms.Get and GetPublicKey through the AWS SDK's default configuration) and
// returns a local verifier for it. Failures are not cached.
func (k *KMSKey) Verifier(ctx context.Context) (signature.Verifier, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.verifier != nil {
		return k.verifier, nil
	}
	sv, err := kms.Get(ctx, k.ref, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("loading KMS key %s: %w", k.ref, err)
	}
	pub, err := sv.PublicKey(options.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("fetching public key of %s: %w", k.ref, err)
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("public key of %s: %w", k.ref, err)
	}
	k.verifier = v
	return v, nil
}
