package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	goyaml "go.yaml.in/yaml/v2"
	"sigs.k8s.io/yaml"
)

// Context keys. Each is documented in docs/deploy.md; cdk.json holds the defaults
// that have one.
const (
	ctxAccount               = "account"
	ctxRegion                = "region"
	ctxStackName             = "stackName"
	ctxKeyArn                = "keyArn"
	ctxKeyAlias              = "keyAlias"
	ctxVerifyKeyArns         = "verifyKeyArns"
	ctxTableName             = "tableName"
	ctxPolicy                = "policy"
	ctxPolicyFile            = "policyFile"
	ctxLogLevel              = "logLevel"
	ctxReservedConcurrency   = "reservedConcurrency"
	ctxRepositories          = "repositories"
	ctxRepositoryPrefixes    = "repositoryPrefixes"
	ctxClusterOIDCProvider   = "clusterOidcProviderArn"
	ctxWebhookServiceAccount = "webhookServiceAccount"
	ctxPodIdentity           = "podIdentity"
	ctxAlarmEmail            = "alarmEmail"
	ctxAlarmTopicArn         = "alarmTopicArn"
	ctxSignerAssetDir        = "signerAssetDir"
)

// defaultReservedConcurrency caps concurrent signer invocations. It is sized
// to the slowest shared ceiling the signer hits (docs/deploy.md says the same):
//
//   - ECR PutImage: 10 requests per second per account and region by default,
//     a quota shared with every pipeline pushing to the registry. Each signed
//     image costs two PutImage calls (the .sig and the .att tag), so the signer
//     can never sustain more than 5 images per second, and it should leave
//     room for the pushes that trigger it.
//   - KMS Sign with ECC keys: 1,000 requests per second, shared across the
//     account and region. Two Sign calls per image keep even 100 concurrent
//     invocations far below it: KMS is not the limit.
//   - One invocation takes about one to three seconds (registry round trips,
//     KMS, two PutImage, DynamoDB).
//
// Five concurrent invocations thus make at most about 10 PutImage calls per
// second in the worst case (one-second invocations) and 3 to 5 typically: at
// or under the PutImage quota, with the rest left for CI. A burst beyond that
// is not lost: throttled asynchronous invocations wait in Lambda's queue (up
// to six hours here). Raise reservedConcurrency only together with the
// PutImage quota, to about quota / 2 x seconds per invocation.
const defaultReservedConcurrency = 5

// Defaults for the optional context values.
const (
	defaultStackName      = "Signet"
	defaultKeyAlias       = "alias/signet"
	defaultLogLevel       = "info"
	defaultServiceAccount = "signet-system/signet-webhook"
	defaultSignerAssetDir = "dist/signer"

	// maxPolicyBytes keeps SIGNET_POLICY well inside Lambda's 4 KB limit on
	// all environment variables together.
	maxPolicyBytes = 3072
)

// Config is everything the stack is built from, read once from the CDK
// context by configFromContext and validated there.
type Config struct {
	// Account and Region pin the stack's environment; both empty leaves the
	// stack environment-agnostic.
	Account, Region string
	StackName       string

	// KeyArn names an existing signing key; empty creates one, with KeyAlias.
	KeyArn   string
	KeyAlias string
	// VerifyKeyArns are other KMS keys the policy's verify rules name
	// (awskms:// keys); the signer may read their public keys.
	VerifyKeyArns []string

	// TableName names the verdict table; empty lets CloudFormation name it.
	TableName string

	// Policy is the compact JSON policy document for SIGNET_POLICY, or empty
	// to sign every image.
	Policy   string
	LogLevel string

	// ReservedConcurrency caps concurrent signer invocations (see
	// defaultReservedConcurrency).
	ReservedConcurrency int

	// Repositories are the ECR repository names or name prefixes ending in
	// "*" the signer may pull from and push signatures to; "*" alone means
	// every repository in the account.
	Repositories []string
	// RepositoryPrefixes narrow the event rule by repository-name prefix; nil
	// derives the filter from Repositories.
	RepositoryPrefixes []string

	// ClusterOIDCProviderArn, when set, lets the webhook's Kubernetes service
	// account assume the webhook role through IRSA.
	ClusterOIDCProviderArn string
	// WebhookNamespace and WebhookServiceAccount name the webhook's service account.
	WebhookNamespace, WebhookServiceAccount string
	// PodIdentity lets EKS Pod Identity assume the webhook role.
	PodIdentity bool

	// AlarmEmail subscribes an address to a new alarm topic; AlarmTopicArn
	// uses an existing topic instead. Both empty: alarms without actions.
	AlarmEmail, AlarmTopicArn string

	// SignerAssetDir is the absolute path of the folder holding the signer's
	// bootstrap binary.
	SignerAssetDir string
}

// Context is the read side of a CDK construct node's context.
type Context interface {
	TryGetContext(key *string) interface{}
}

var (
	accountRE = regexp.MustCompile(`^[0-9]{12}$`)
	regionRE  = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]$`)
	keyArnRE  = regexp.MustCompile(`^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$`)
	aliasRE   = regexp.MustCompile(`^alias/[A-Za-z0-9/_-]{1,250}$`)
	topicRE   = regexp.MustCompile(`^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$`)
	oidcRE    = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/([A-Za-z0-9./_-]+)$`)
	// repoRE is ECR's repository name rule; repoPrefixRE the characters a
	// prefix of such a name may have.
	repoRE       = regexp.MustCompile(`^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$`)
	repoPrefixRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._/-]*$`)
	// k8sNameRE is a Kubernetes DNS-1123 label (namespaces, service accounts).
	k8sNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	logLevels = []string{"debug", "info", "warn", "error"}
)

// configFromContext reads and validates the stack configuration. Relative
// file paths (policyFile, signerAssetDir) are taken from root, the folder
// holding cdk.json.
func configFromContext(c Context, root string) (Config, error) {
	r := contextReader{c: c}
	cfg := Config{
		Account:                r.str(ctxAccount, os.Getenv("CDK_DEFAULT_ACCOUNT")),
		Region:                 r.str(ctxRegion, os.Getenv("CDK_DEFAULT_REGION")),
		StackName:              r.str(ctxStackName, defaultStackName),
		KeyArn:                 r.str(ctxKeyArn, ""),
		KeyAlias:               r.str(ctxKeyAlias, defaultKeyAlias),
		VerifyKeyArns:          r.list(ctxVerifyKeyArns),
		TableName:              r.str(ctxTableName, ""),
		LogLevel:               strings.ToLower(r.str(ctxLogLevel, defaultLogLevel)),
		ReservedConcurrency:    r.integer(ctxReservedConcurrency, defaultReservedConcurrency),
		Repositories:           r.list(ctxRepositories),
		RepositoryPrefixes:     r.list(ctxRepositoryPrefixes),
		ClusterOIDCProviderArn: r.str(ctxClusterOIDCProvider, ""),
		PodIdentity:            r.boolean(ctxPodIdentity, true),
		AlarmEmail:             r.str(ctxAlarmEmail, ""),
		AlarmTopicArn:          r.str(ctxAlarmTopicArn, ""),
	}
	sa := r.str(ctxWebhookServiceAccount, defaultServiceAccount)
	policy, policyFile := r.str(ctxPolicy, ""), r.str(ctxPolicyFile, "")
	assetDir := r.str(ctxSignerAssetDir, defaultSignerAssetDir)
	if len(r.errs) > 0 {
		return Config{}, errors.Join(r.errs...)
	}

	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("context %s: "+format, append([]any{key}, args...)...))
	}
	if cfg.Account != "" && !accountRE.MatchString(cfg.Account) {
		bad(ctxAccount, "%q is not a 12-digit AWS account id", cfg.Account)
	}
	if cfg.Region != "" && !regionRE.MatchString(cfg.Region) {
		bad(ctxRegion, "%q is not an AWS region", cfg.Region)
	}
	if cfg.KeyArn != "" && !keyArnRE.MatchString(cfg.KeyArn) {
		bad(ctxKeyArn, "%q is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)", cfg.KeyArn)
	}
	for _, k := range cfg.VerifyKeyArns {
		if !keyArnRE.MatchString(k) {
			bad(ctxVerifyKeyArns, "%q is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID; IAM cannot match aliases)", k)
		}
	}
	if !aliasRE.MatchString(cfg.KeyAlias) || strings.HasPrefix(cfg.KeyAlias, "alias/aws/") {
		bad(ctxKeyAlias, "%q is not a KMS alias name of the form alias/NAME (and not alias/aws/...)", cfg.KeyAlias)
	}
	if !slices.Contains(logLevels, cfg.LogLevel) {
		bad(ctxLogLevel, "%q is not one of %s", cfg.LogLevel, strings.Join(logLevels, ", "))
	}
	if cfg.ReservedConcurrency < 1 || cfg.ReservedConcurrency > 100 {
		bad(ctxReservedConcurrency, "%d is outside 1..100; see docs/deploy.md for the sizing", cfg.ReservedConcurrency)
	}

	p, err := readPolicy(policy, policyFile, root)
	if err != nil {
		errs = append(errs, err)
	}
	cfg.Policy = p

	if err := cfg.resolveRepositories(); err != nil {
		errs = append(errs, err)
	}

	ns, name, ok := strings.Cut(sa, "/")
	if !ok || !k8sNameRE.MatchString(ns) || !k8sNameRE.MatchString(name) {
		bad(ctxWebhookServiceAccount, "%q is not NAMESPACE/NAME", sa)
	}
	cfg.WebhookNamespace, cfg.WebhookServiceAccount = ns, name
	if cfg.ClusterOIDCProviderArn != "" && !oidcRE.MatchString(cfg.ClusterOIDCProviderArn) {
		bad(ctxClusterOIDCProvider, "%q is not an IAM OIDC provider ARN (arn:aws:iam::ACCOUNT:oidc-provider/oidc.eks.REGION.amazonaws.com/id/ID)", cfg.ClusterOIDCProviderArn)
	}
	if cfg.ClusterOIDCProviderArn == "" && !cfg.PodIdentity {
		errs = append(errs, fmt.Errorf("context %s=false and no %s: nothing could assume the webhook role", ctxPodIdentity, ctxClusterOIDCProvider))
	}

	if cfg.AlarmEmail != "" && cfg.AlarmTopicArn != "" {
		errs = append(errs, fmt.Errorf("context %s and %s: set one, not both", ctxAlarmEmail, ctxAlarmTopicArn))
	}
	if cfg.AlarmEmail != "" && !strings.Contains(cfg.AlarmEmail, "@") {
		bad(ctxAlarmEmail, "%q is not an email address", cfg.AlarmEmail)
	}
	if cfg.AlarmTopicArn != "" && !topicRE.MatchString(cfg.AlarmTopicArn) {
		bad(ctxAlarmTopicArn, "%q is not an SNS topic ARN", cfg.AlarmTopicArn)
	}

	if !filepath.IsAbs(assetDir) {
		assetDir = filepath.Join(root, assetDir)
	}
	cfg.SignerAssetDir = assetDir
	if fi, err := os.Stat(filepath.Join(assetDir, "bootstrap")); err != nil || fi.IsDir() {
		errs = append(errs, fmt.Errorf("signer Lambda not built: %s has no bootstrap binary; run `make lambda` first (or set context %s to the folder that holds it)", assetDir, ctxSignerAssetDir))
	}
	return cfg, errors.Join(errs...)
}

// resolveRepositories checks Repositories and RepositoryPrefixes and fills
// in whichever is missing from the other, so that the event rule never
// delivers an event for a repository the signer may not write to.
func (cfg *Config) resolveRepositories() error {
	var errs []error
	for _, r := range cfg.Repositories {
		name, isPrefix := strings.CutSuffix(r, "*")
		switch {
		case r == "*":
		case isPrefix && repoPrefixRE.MatchString(name) && !strings.Contains(name, "*"):
		case !isPrefix && repoRE.MatchString(r) && len(r) >= 2 && len(r) <= 256:
		default:
			errs = append(errs, fmt.Errorf("context %s: %q is neither an ECR repository name nor a prefix ending in *", ctxRepositories, r))
		}
	}
	for _, p := range cfg.RepositoryPrefixes {
		if !repoPrefixRE.MatchString(p) {
			errs = append(errs, fmt.Errorf("context %s: %q is not a repository name prefix", ctxRepositoryPrefixes, p))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	switch {
	case len(cfg.Repositories) == 0 && len(cfg.RepositoryPrefixes) == 0:
		return fmt.Errorf("context %s is required: the ECR repositories the signer may read and sign, as names or prefixes ending in * (e.g. -c %s='team/*,base-images'); '*' allows every repository in the account", ctxRepositories, ctxRepositories)
	case len(cfg.Repositories) == 0:
		for _, p := range cfg.RepositoryPrefixes {
			cfg.Repositories = append(cfg.Repositories, p+"*")
		}
	default:
		for _, p := range cfg.RepositoryPrefixes {
			if !coveredBy(p, cfg.Repositories) {
				errs = append(errs, fmt.Errorf("context %s: events from repositories starting with %q would reach the signer, but %s does not let it sign them", ctxRepositoryPrefixes, p, ctxRepositories))
			}
		}
	}
	return errors.Join(errs...)
}

// coveredBy reports whether every repository name starting with prefix
// matches one of the patterns.
func coveredBy(prefix string, patterns []string) bool {
	for _, r := range patterns {
		if p, ok := strings.CutSuffix(r, "*"); ok && strings.HasPrefix(prefix, p) {
			return true
		}
	}
	return false
}

// RepositoryFilter returns the values for the event pattern's
// detail.repository-name: exact names and {"prefix": ...} objects. It
// returns nil when every repository is to be matched.
func (cfg Config) RepositoryFilter() []interface{} {
	var out []interface{}
	if len(cfg.RepositoryPrefixes) > 0 {
		for _, p := range cfg.RepositoryPrefixes {
			out = append(out, map[string]interface{}{"prefix": p})
		}
		return out
	}
	for _, r := range cfg.Repositories {
		if r == "*" {
			return nil
		}
		if p, ok := strings.CutSuffix(r, "*"); ok {
			out = append(out, map[string]interface{}{"prefix": p})
		} else {
			out = append(out, r)
		}
	}
	return out
}

// readPolicy returns the policy document from the policy or policyFile
// context value (JSON or YAML) as compact JSON, or "" when neither is set.
func readPolicy(inline, file, root string) (string, error) {
	var raw []byte
	switch {
	case inline != "" && file != "":
		return "", fmt.Errorf("context %s and %s: set one, not both", ctxPolicy, ctxPolicyFile)
	case inline != "":
		raw = []byte(inline)
	case file != "":
		if !filepath.IsAbs(file) {
			file = filepath.Join(root, file)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("context %s: reading policy: %w", ctxPolicyFile, err)
		}
		raw = b
	default:
		return "", nil
	}
	// The signer takes JSON or YAML (internal/policy); JSON is smaller in the
	// environment. YAMLToJSONStrict takes both, but reads only the first of
	// several YAML documents, so those are refused here.
	docs := 0
	dec := goyaml.NewDecoder(bytes.NewReader(raw))
	for {
		var v interface{}
		if err := dec.Decode(&v); err == io.EOF {
			break
		} else if err != nil {
			return "", fmt.Errorf("context %s/%s: policy is neither JSON nor YAML: %w", ctxPolicy, ctxPolicyFile, err)
		}
		docs++
	}
	if docs != 1 {
		return "", fmt.Errorf("context %s/%s: policy has %d YAML documents, want 1", ctxPolicy, ctxPolicyFile, docs)
	}
	js, err := yaml.YAMLToJSONStrict(raw)
	if err != nil {
		return "", fmt.Errorf("context %s/%s: policy is neither JSON nor YAML: %w", ctxPolicy, ctxPolicyFile, err)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, js); err != nil {
		return "", fmt.Errorf("context %s/%s: policy is not valid JSON: %w", ctxPolicy, ctxPolicyFile, err)
	}
	if v := bytes.TrimSpace(buf.Bytes()); len(v) == 0 || v[0] != '{' {
		return "", fmt.Errorf("context %s/%s: policy must be a JSON or YAML object", ctxPolicy, ctxPolicyFile)
	}
	if buf.Len() > maxPolicyBytes {
		return "", fmt.Errorf("context %s/%s: policy is %d bytes compacted, more than the %d that fit in the Lambda environment", ctxPolicy, ctxPolicyFile, buf.Len(), maxPolicyBytes)
	}
	return buf.String(), nil
}

// contextReader reads typed values from the context. Values from cdk.json
// keep their JSON types; values given with `cdk -c key=value` are always
// strings, so each reader accepts both forms. The first type error per key
// is collected in errs.
type contextReader struct {
	c    Context
	errs []error
}

func (r *contextReader) get(key string) interface{} {
	k := key
	return r.c.TryGetContext(&k)
}

func (r *contextReader) fail(key string, v interface{}, want string) {
	r.errs = append(r.errs, fmt.Errorf("context %s: %v (%T) is not %s", key, v, v, want))
}

func (r *contextReader) str(key, def string) string {
	switch v := r.get(key).(type) {
	case nil:
		return def
	case string:
		if v = strings.TrimSpace(v); v == "" {
			return def
		}
		return v
	default:
		r.fail(key, v, "a string")
		return def
	}
}

func (r *contextReader) integer(key string, def int) int {
	switch v := r.get(key).(type) {
	case nil:
		return def
	case float64:
		if v != float64(int(v)) {
			r.fail(key, v, "an integer")
		}
		return int(v)
	case string:
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			r.fail(key, v, "an integer")
		}
		return n
	default:
		r.fail(key, v, "an integer")
		return def
	}
}

func (r *contextReader) boolean(key string, def bool) bool {
	switch v := r.get(key).(type) {
	case nil:
		return def
	case bool:
		return v
	case string:
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			r.fail(key, v, "true or false")
		}
		return b
	default:
		r.fail(key, v, "true or false")
		return def
	}
}

// list reads a JSON array of strings, a JSON array in a string, or a
// comma-separated string. Empty entries are dropped.
func (r *contextReader) list(key string) []string {
	var items []string
	switch v := r.get(key).(type) {
	case nil:
		return nil
	case []interface{}:
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				r.fail(key, e, "a string in a list")
				return nil
			}
			items = append(items, s)
		}
	case string:
		if s := strings.TrimSpace(v); strings.HasPrefix(s, "[") {
			if err := json.Unmarshal([]byte(s), &items); err != nil {
				r.fail(key, v, "a JSON list of strings")
				return nil
			}
		} else {
			items = strings.Split(s, ",")
		}
	default:
		r.fail(key, v, "a list of strings")
		return nil
	}
	var out []string
	for _, s := range items {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
