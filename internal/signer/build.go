package signer

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/signet-dev/signet/internal/ecrauth"
	"github.com/signet-dev/signet/internal/oci"
	"github.com/signet-dev/signet/internal/pipeline"
	"github.com/signet-dev/signet/internal/policy"
	"github.com/signet-dev/signet/internal/signing"
	"github.com/signet-dev/signet/internal/verdict"
)

// Build makes the pipeline from c: AWS clients from the default config (so
// AWS_ENDPOINT_URL_KMS and AWS_ENDPOINT_URL_DYNAMODB reach local emulators),
// the KMS signer (its public key read now, so a wrong key fails at cold
// start), the registry client with ECR authentication, and the policy.
func Build(ctx context.Context, c Config, version string) (*pipeline.Pipeline, *signing.Signer, error) {
	doc, err := c.PolicyDocument()
	if err != nil {
		return nil, nil, err
	}
	pol := policy.Default()
	if doc != nil {
		if pol, err = policy.Parse(doc); err != nil {
			return nil, nil, fmt.Errorf("repository policy: %w", err)
		}
	}
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRetryMaxAttempts(8), config.WithRetryMode(aws.RetryModeAdaptive),
		config.WithHTTPClient(&http.Client{Timeout: 30 * time.Second}))
	if err != nil {
		return nil, nil, fmt.Errorf("loading AWS configuration: %w", err)
	}
	signer, err := signing.NewKMS(ctx, c.KMSKey)
	if err != nil {
		return nil, nil, err
	}
	reg, err := oci.New(
		oci.WithKeychain(ecrauth.NewKeychain(cfg)),
		oci.WithTransport(remote.DefaultTransport),
		oci.WithUserAgent("signet/"+version),
	)
	if err != nil {
		return nil, nil, err
	}
	store := verdict.NewDynamoStore(dynamodb.NewFromConfig(cfg), c.Table)
	opts := []pipeline.Option{pipeline.WithVersion(version)}
	if c.Registry != "" {
		opts = append(opts, pipeline.WithRegistry(c.Registry))
	}
	opts = append(opts, pipeline.WithPolicy(NewRepositoryPolicy(pol, reg.Options)))
	p, err := pipeline.New(reg, signer, store, opts...)
	if err != nil {
		return nil, nil, err
	}
	return p, signer, nil
}
