package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/signet-dev/signet/internal/admission"
	"github.com/signet-dev/signet/internal/ecrauth"
	"github.com/signet-dev/signet/internal/imageref"
	"github.com/signet-dev/signet/internal/verdict"
	"github.com/signet-dev/signet/internal/version"
	"github.com/signet-dev/signet/internal/webhook"
)

// webhookConfig is `signet webhook`'s configuration, from flags and the environment.
type webhookConfig struct {
	listen, metricsListen string
	certFile, keyFile     string
	table                 string
	tags                  string
	pinTags               bool
	cacheSize             int
	cacheTTL, negTTL      time.Duration
	drain                 time.Duration
	logLevel              slog.Level
	policy                admission.Config
}

func parseWebhookFlags(args []string, stderr io.Writer) (webhookConfig, error) {
	var c webhookConfig
	fs := flag.NewFlagSet("signet webhook", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.listen, "listen", ":8443", "HTTPS address for admission reviews (POST /validate)")
	fs.StringVar(&c.metricsListen, "metrics-listen", ":9090", "plain-HTTP address for /metrics, /healthz and /readyz")
	fs.StringVar(&c.certFile, "tls-cert", "/etc/signet/tls/tls.crt", "TLS certificate (PEM), reloaded when it changes")
	fs.StringVar(&c.keyFile, "tls-key", "/etc/signet/tls/tls.key", "TLS private key (PEM), reloaded when it changes")
	fs.StringVar(&c.table, "table", os.Getenv("SIGNET_TABLE"), "DynamoDB verdict table (env SIGNET_TABLE)")
	mode := fs.String("mode", "enforce", "enforce (deny), warn (admit with warnings) or audit (admit, log only)")
	failure := fs.String("failure-policy", "closed", "when verdicts cannot be read: closed (deny) or open (admit with a warning)")
	fs.StringVar(&c.tags, "tags", "deny", "images given by tag alone: deny (ask to pin by digest) or resolve (ask the registry)")
	fs.BoolVar(&c.pinTags, "pin-tags", false, "also serve POST /mutate, which rewrites tags whose digest has a passing verdict to IMAGE@DIGEST (asks the registry)")
	breakglassGroups := fs.String("breakglass-groups", "", "comma-separated users or groups whose requests may use the breakglass annotation (default: none, breakglass off)")
	include := fs.String("include-namespaces", "", "comma-separated namespace patterns to check (default: all)")
	exclude := fs.String("exclude-namespaces", "kube-system", "comma-separated namespace patterns never checked")
	fs.StringVar(&c.policy.Breakglass, "breakglass-annotation", admission.DefaultBreakglass, `annotation whose non-empty value (the reason) admits an object, logged; "-" turns it off`)
	fs.DurationVar(&c.policy.Timeout, "timeout", 3*time.Second, "time budget for the look-ups of one request (keep it under the webhook's timeoutSeconds)")
	fs.IntVar(&c.cacheSize, "cache-size", 10000, "verdicts kept in memory (0 turns the cache off)")
	fs.DurationVar(&c.cacheTTL, "cache-ttl", 30*time.Second, "how long a verdict (or a tag's digest) is kept")
	fs.DurationVar(&c.negTTL, "cache-negative-ttl", 5*time.Second, "how long the absence of a verdict is kept")
	fs.DurationVar(&c.drain, "drain", 5*time.Second, "on SIGTERM, keep serving (not ready) this long before closing")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.table == "" {
		return c, fmt.Errorf("--table or SIGNET_TABLE is required")
	}
	if c.tags != "deny" && c.tags != "resolve" {
		return c, fmt.Errorf("--tags %q: want deny or resolve", c.tags)
	}
	if err := c.logLevel.UnmarshalText([]byte(*level)); err != nil {
		return c, fmt.Errorf("--log-level: %w", err)
	}
	c.policy.Mode = admission.Mode(*mode)
	c.policy.FailurePolicy = admission.FailurePolicy(*failure)
	c.policy.IncludeNamespaces = splitList(*include)
	c.policy.BreakglassGroups = splitList(*breakglassGroups)
	c.policy.ExcludeNamespaces = splitList(*exclude)
	return c, c.policy.Validate()
}

func runWebhook(ctx context.Context, args []string, stderr io.Writer) int {
	c, err := parseWebhookFlags(args, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "signet webhook: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: c.logLevel}))
	if err := serveWebhook(ctx, c, log); err != nil {
		log.Error("webhook stopped", "error", err)
		return 1
	}
	return 0
}

func serveWebhook(ctx context.Context, c webhookConfig, log *slog.Logger) error {
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return fmt.Errorf("loading AWS config: %w", err)
	}
	store := verdict.NewDynamoStore(dynamodb.NewFromConfig(awsCfg, func(o *dynamodb.Options) { o.RetryMaxAttempts = 2 }), c.table)
	certs, err := webhook.NewCertReloader(c.certFile, c.keyFile)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := admission.NewMetrics(reg)
	opts := []admission.CheckerOption{admission.WithMetrics(m), admission.WithCache(c.cacheSize, c.cacheTTL, c.negTTL)}
	keychain := authn.NewMultiKeychain(authn.DefaultKeychain, ecrauth.NewKeychain(awsCfg))
	resolver := admission.WithResolver(imageref.NewRemoteResolver(imageref.WithKeychain(keychain)))
	if c.tags == "resolve" {
		opts = append(opts, resolver)
	}
	rv, err := admission.NewReviewer(c.policy, admission.NewChecker(store, opts...),
		admission.WithLogger(log), admission.WithReviewMetrics(m))
	if err != nil {
		return err
	}
	h := admission.NewHandler(rv, admission.WithHandlerLogger(log))
	serverOpts := []webhook.Option{webhook.WithDrain(c.drain), webhook.WithErrorLog(log)}
	if c.pinTags {
		pinner, err := admission.NewPinner(c.policy, admission.NewChecker(store, append(opts, resolver)...),
			admission.WithLogger(log), admission.WithReviewMetrics(m))
		if err != nil {
			return err
		}
		serverOpts = append(serverOpts, webhook.WithMutator(admission.NewHandler(pinner, admission.WithHandlerLogger(log))))
	}
	log.Info("signet webhook starting", "version", version.Version, "listen", c.listen, "metrics", c.metricsListen,
		"table", c.table, "mode", c.policy.Mode, "failurePolicy", c.policy.FailurePolicy, "tags", c.tags, "pinTags", c.pinTags,
		"include", c.policy.IncludeNamespaces, "exclude", c.policy.ExcludeNamespaces)
	return webhook.New(certs, h, reg, serverOpts...).Run(ctx, c.listen, c.metricsListen)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
