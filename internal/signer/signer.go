// Package signer is the signer Lambda's handler: configuration read once from
// the environment, and one structured log line per event around the pipeline.
package signer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/signet-dev/signet/internal/ecrevent"
	"github.com/signet-dev/signet/internal/pipeline"
)

// Config is the signer's configuration, from the environment.
type Config struct {
	KMSKey     string // SIGNET_KMS_KEY: awskms:///alias/NAME or awskms:///arn:...
	Table      string // SIGNET_TABLE: the verdict table
	Registry   string // SIGNET_REGISTRY: optional registry host; default ACCOUNT.dkr.ecr.REGION.amazonaws.com
	Policy     string // SIGNET_POLICY: optional policy document (JSON or YAML)
	PolicyFile string // SIGNET_POLICY_FILE: optional path of a policy document
	LogLevel   slog.Level
}

// ConfigFromEnv reads and validates the configuration, naming every problem.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		KMSKey:     strings.TrimSpace(getenv("SIGNET_KMS_KEY")),
		Table:      strings.TrimSpace(getenv("SIGNET_TABLE")),
		Registry:   strings.TrimSpace(getenv("SIGNET_REGISTRY")),
		Policy:     getenv("SIGNET_POLICY"),
		PolicyFile: strings.TrimSpace(getenv("SIGNET_POLICY_FILE")),
	}
	var errs []error
	if c.KMSKey == "" {
		errs = append(errs, errors.New("SIGNET_KMS_KEY is required (awskms:///alias/NAME or awskms:///arn:aws:kms:...)"))
	} else if !strings.HasPrefix(c.KMSKey, "awskms://") {
		errs = append(errs, fmt.Errorf("SIGNET_KMS_KEY %q must start with awskms://", c.KMSKey))
	}
	if c.Table == "" {
		errs = append(errs, errors.New("SIGNET_TABLE is required"))
	}
	if c.Policy != "" && c.PolicyFile != "" {
		errs = append(errs, errors.New("set SIGNET_POLICY or SIGNET_POLICY_FILE, not both"))
	}
	if lv := getenv("SIGNET_LOG_LEVEL"); lv != "" {
		if err := c.LogLevel.UnmarshalText([]byte(lv)); err != nil {
			errs = append(errs, fmt.Errorf("SIGNET_LOG_LEVEL: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("signer configuration: %w", err)
	}
	return c, nil
}

// PolicyDocument returns the configured policy document, or nil for none.
func (c Config) PolicyDocument() ([]byte, error) {
	if c.PolicyFile != "" {
		b, err := os.ReadFile(c.PolicyFile)
		if err != nil {
			return nil, fmt.Errorf("reading SIGNET_POLICY_FILE: %w", err)
		}
		return b, nil
	}
	if strings.TrimSpace(c.Policy) == "" {
		return nil, nil
	}
	return []byte(c.Policy), nil
}

// Pipeline is what the handler drives.
type Pipeline interface {
	Handle(ctx context.Context, t ecrevent.Target) (pipeline.Result, error)
}

// Handler handles EventBridge events delivered to the Lambda.
type Handler struct {
	p   Pipeline
	log *slog.Logger
	// margin is kept back from the Lambda deadline, so that a slow call ends
	// with an error the platform retries rather than a timeout.
	margin time.Duration
}

// NewHandler returns a Handler that logs to log.
func NewHandler(p Pipeline, log *slog.Logger) *Handler {
	return &Handler{p: p, log: log, margin: 2 * time.Second}
}

// Handle processes one event. It returns an error only for what must be
// retried and finally dead-lettered: malformed input and transient failures.
func (h *Handler) Handle(ctx context.Context, raw json.RawMessage) (res pipeline.Result, err error) {
	start := time.Now()
	log := h.log
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		log = log.With("requestId", lc.AwsRequestID)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error handling event: %v", r)
			log.Error("event failed", "error", err.Error(), "panic", true)
		}
	}()
	t, err := ecrevent.Parse(raw)
	var skip *ecrevent.Skip
	switch {
	case errors.As(err, &skip):
		log.Info("event skipped", "outcome", pipeline.Skipped, "reason", skip.Reason, "eventId", eventID(raw))
		return pipeline.Result{Outcome: pipeline.Skipped, Reason: skip.Reason}, nil
	case err != nil:
		log.Error("event rejected", "error", err.Error(), "bytes", len(raw))
		return pipeline.Result{}, err
	}
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-h.margin))
		defer cancel()
	}
	res, err = h.p.Handle(ctx, t)
	attrs := []any{
		"eventId", t.EventID, "action", t.Action, "repository", t.Repository, "digest", t.Digest, "tag", t.Tag,
		"outcome", res.Outcome, "reason", res.Reason, "rule", res.Rule, "changed", res.Changed,
		"platforms", len(res.Platforms), "ms", time.Since(start).Milliseconds(),
	}
	if err != nil {
		log.Error("event failed, will be retried", append(attrs, "error", err.Error())...)
		return res, err
	}
	log.Info("event handled", attrs...)
	return res, nil
}

// Invoke implements aws-lambda-go's lambda.Handler, so that every payload,
// even one that is not JSON, reaches Handle and its log line.
func (h *Handler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	res, err := h.Handle(ctx, payload)
	if err != nil {
		return nil, err
	}
	return json.Marshal(res)
}

// eventID digs the id out of an event that did not parse fully.
func eventID(raw []byte) string {
	var e struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(raw, &e)
	return e.ID
}
