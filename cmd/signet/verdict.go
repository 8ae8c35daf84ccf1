package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/signet-dev/signet/internal/admission"
	"github.com/signet-dev/signet/internal/ecrauth"
	"github.com/signet-dev/signet/internal/imageref"
	"github.com/signet-dev/signet/internal/verdict"
)

func runVerdict(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("signet verdict", flag.ContinueOnError)
	fs.SetOutput(stderr)
	table := fs.String("table", os.Getenv("SIGNET_TABLE"), "DynamoDB verdict table (env SIGNET_TABLE)")
	output := fs.String("o", "table", "output: table or json")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: signet verdict [flags] IMAGE...\n\nPrints each image's verdict. Exit status: 0 all allowed, 1 some denied, 2 error.\nTags are resolved to digests at the registry.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return admission.ExitError
	}
	switch {
	case fs.NArg() == 0:
		fs.Usage()
		return admission.ExitError
	case *table == "":
		fmt.Fprintln(stderr, "signet verdict: --table or SIGNET_TABLE is required")
		return admission.ExitError
	case *output != "table" && *output != "json":
		fmt.Fprintf(stderr, "signet verdict: -o %q: want table or json\n", *output)
		return admission.ExitError
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "signet verdict: loading AWS config: %v\n", err)
		return admission.ExitError
	}
	store := verdict.NewDynamoStore(dynamodb.NewFromConfig(cfg), *table)
	// Registry credentials: docker config and its helpers, then ECR tokens.
	keychain := authn.NewMultiKeychain(authn.DefaultKeychain, ecrauth.NewKeychain(cfg))
	checker := admission.NewChecker(store, admission.WithResolver(imageref.NewRemoteResolver(imageref.WithKeychain(keychain))))
	results := checker.CheckAll(ctx, fs.Args())

	write := admission.WriteTable
	if *output == "json" {
		write = admission.WriteJSON
	}
	if err := write(stdout, results); err != nil {
		fmt.Fprintf(stderr, "signet verdict: %v\n", err)
		return admission.ExitError
	}
	return admission.ExitCode(results)
}
