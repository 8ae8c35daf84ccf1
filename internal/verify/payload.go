package verify

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	"github.com/sigstore/sigstore/pkg/signature/payload"
	"google.golang.org/protobuf/encoding/protojson"
)

// InTotoPayloadType is the DSSE payload type of in-toto statements.
const InTotoPayloadType = "application/vnd.in-toto+json"

// ParseSimpleSigning parses a legacy cosign payload and checks that it names
// a manifest digest.
func ParseSimpleSigning(data []byte) (payload.SimpleContainerImage, error) {
	var p payload.SimpleContainerImage
	if err := json.Unmarshal(data, &p); err != nil {
		return p, fmt.Errorf("the payload is not simple-signing JSON: %v", err)
	}
	if p.Critical.Image.DockerManifestDigest == "" {
		return p, errors.New("the payload names no critical.image.docker-manifest-digest")
	}
	return p, nil
}

// Subject is a subject of an in-toto statement.
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// statement is the part of an in-toto statement signet reads.
type statement struct {
	Type          string    `json:"_type"`
	Subject       []Subject `json:"subject"`
	PredicateType string    `json:"predicateType"`
}

// ParsedBundle is what signet reads from a sigstore bundle with a DSSE
// envelope: the signed payload and its one signature.
type ParsedBundle struct {
	// MediaType is the bundle's media type (its version).
	MediaType string
	// PayloadType and Payload are the DSSE envelope's; the signature is
	// over PAE(PayloadType, Payload).
	PayloadType string
	Payload     []byte
	// Signature is the envelope's first signature.
	Signature []byte
	// Hint is the public key hint of the verification material, if any:
	// base64(sha256(DER public key)) for cosign key-based signing.
	Hint string
	// PredicateType and Subjects come from the in-toto statement.
	PredicateType string
	Subjects      []Subject
}

// ParseBundle parses a sigstore bundle (JSON) holding a DSSE envelope with an
// in-toto statement. It checks structure only; no signature is verified.
func ParseBundle(data []byte) (*ParsedBundle, error) {
	var b protobundle.Bundle
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("the bundle is not valid JSON: %v", err)
	}
	env := b.GetDsseEnvelope()
	if env == nil {
		return nil, errors.New("the bundle holds no DSSE envelope (message signatures are not supported)")
	}
	if len(env.GetSignatures()) == 0 || len(env.GetSignatures()[0].GetSig()) == 0 {
		return nil, errors.New("the bundle's DSSE envelope has no signature")
	}
	p := &ParsedBundle{
		MediaType:   b.GetMediaType(),
		PayloadType: env.GetPayloadType(),
		Payload:     env.GetPayload(),
		Signature:   env.GetSignatures()[0].GetSig(),
		Hint:        b.GetVerificationMaterial().GetPublicKey().GetHint(),
	}
	if p.PayloadType != InTotoPayloadType {
		return nil, fmt.Errorf("the DSSE payload type is %q, not %q", p.PayloadType, InTotoPayloadType)
	}
	var st statement
	if err := json.Unmarshal(p.Payload, &st); err != nil {
		return nil, fmt.Errorf("the DSSE payload is not an in-toto statement: %v", err)
	}
	p.PredicateType, p.Subjects = st.PredicateType, st.Subject
	return p, nil
}

// PAE is the DSSE pre-authentication encoding that DSSE signatures sign:
// "DSSEv1" SP len(type) SP type SP len(body) SP body.
func PAE(payloadType string, body []byte) []byte {
	out := []byte("DSSEv1 ")
	out = strconv.AppendInt(out, int64(len(payloadType)), 10)
	out = append(out, ' ')
	out = append(out, payloadType...)
	out = append(out, ' ')
	out = strconv.AppendInt(out, int64(len(body)), 10)
	out = append(out, ' ')
	return append(out, body...)
}
