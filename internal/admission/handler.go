package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"runtime/debug"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// DefaultMaxBody caps the size of an AdmissionReview the handler reads. The
// API server limits objects to about 3 MiB; a review carries two of them.
const DefaultMaxBody = 7 << 20

// Reviewing decides one admission request. *Reviewer implements it.
type Reviewing interface {
	Review(ctx context.Context, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse
}

var _ Reviewing = (*Reviewer)(nil)

// Handler serves admission.k8s.io/v1 AdmissionReviews over HTTP.
type Handler struct {
	reviewer Reviewing
	maxBody  int64
	log      *slog.Logger
}

// HandlerOption configures a Handler.
type HandlerOption func(*Handler)

// WithMaxBody caps the request body (default DefaultMaxBody).
func WithMaxBody(n int64) HandlerOption { return func(h *Handler) { h.maxBody = n } }

// WithHandlerLogger sets where malformed requests and recovered panics are
// logged (default: nowhere).
func WithHandlerLogger(l *slog.Logger) HandlerOption { return func(h *Handler) { h.log = l } }

// NewHandler returns an http.Handler that decodes AdmissionReviews, asks r,
// and writes the response with the request's UID. A panic while deciding
// becomes an error response (which the API server treats per the webhook's
// failurePolicy) instead of a dropped connection.
func NewHandler(r Reviewing, opts ...HandlerOption) *Handler {
	h := &Handler{reviewer: r, maxBody: DefaultMaxBody, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(h)
	}
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "admission reviews are POSTed", http.StatusMethodNotAllowed)
		return
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		http.Error(w, fmt.Sprintf("content type %q: want application/json", ct), http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.log.WarnContext(r.Context(), "admission review too large", "limit", h.maxBody)
			writeReview(w, errored("", http.StatusRequestEntityTooLarge, fmt.Sprintf("signet: admission review larger than %d bytes", h.maxBody)))
			return
		}
		h.log.WarnContext(r.Context(), "reading admission review", "error", err)
		http.Error(w, "reading request body: "+err.Error(), http.StatusBadRequest)
		return
	}
	review, err := DecodeReview(body)
	if err != nil {
		h.log.WarnContext(r.Context(), "decoding admission review", "error", err)
		writeReview(w, errored(uidOf(review), http.StatusBadRequest, "signet: "+err.Error()))
		return
	}
	writeReview(w, h.review(r.Context(), review.Request))
}

// review asks the reviewer, turning a panic into an error response.
func (h *Handler) review(ctx context.Context, req *admissionv1.AdmissionRequest) (resp *admissionv1.AdmissionResponse) {
	defer func() {
		if p := recover(); p != nil {
			h.log.ErrorContext(ctx, "panic while reviewing", "uid", string(req.UID), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			resp = errored(req.UID, http.StatusInternalServerError, fmt.Sprintf("signet: internal error while reviewing: %v", p))
		}
	}()
	resp = h.reviewer.Review(ctx, req)
	if resp == nil {
		resp = errored(req.UID, http.StatusInternalServerError, "signet: no decision")
	}
	resp.UID = req.UID
	return resp
}

// DecodeReview parses an admission.k8s.io/v1 AdmissionReview request. On an
// error the returned review, when not nil, carries whatever UID could be read.
func DecodeReview(body []byte) (*admissionv1.AdmissionReview, error) {
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		return nil, fmt.Errorf("decoding admission review: %w", err)
	}
	gv := admissionv1.SchemeGroupVersion.String()
	if review.APIVersion != gv || review.Kind != "AdmissionReview" {
		return &review, fmt.Errorf("decoding admission review: got apiVersion %q kind %q, want %s AdmissionReview", review.APIVersion, review.Kind, gv)
	}
	if review.Request == nil {
		return &review, errors.New("decoding admission review: no request")
	}
	if review.Request.UID == "" {
		return &review, errors.New("decoding admission review: request has no uid")
	}
	return &review, nil
}

func uidOf(r *admissionv1.AdmissionReview) types.UID {
	if r == nil || r.Request == nil {
		return ""
	}
	return r.Request.UID
}

func errored(uid types.UID, code int32, msg string) *admissionv1.AdmissionResponse {
	resp := deny(code, msg)
	resp.UID = uid
	return resp
}

func writeReview(w http.ResponseWriter, resp *admissionv1.AdmissionResponse) {
	out := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: admissionv1.SchemeGroupVersion.String(), Kind: "AdmissionReview"},
		Response: resp,
	}
	b, err := json.Marshal(out)
	if err != nil {
		http.Error(w, "encoding admission review: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}
