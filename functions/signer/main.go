// Command signer is the Lambda that signs or verifies images on ECR push.
// Build it with `make lambda` (provided.al2023, arm64, -tags lambda.norpc).
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/signet-dev/signet/internal/signer"
	"github.com/signet-dev/signet/internal/version"
)

func main() {
	cfg, err := signer.ConfigFromEnv(os.Getenv)
	if err != nil {
		fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: cfg.LogLevel}))
	p, _, err := signer.Build(context.Background(), cfg, version.Version)
	if err != nil {
		fatal(err)
	}
	log.Info("signer ready", "version", version.Version, "key", cfg.KMSKey, "table", cfg.Table, "registry", cfg.Registry)
	lambda.Start(signer.NewHandler(p, log))
}

func fatal(err error) {
	slog.New(slog.NewJSONHandler(os.Stderr, nil)).Error("signer cannot start", "error", err.Error())
	os.Exit(1)
}
