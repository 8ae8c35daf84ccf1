// Command signet is signet's CLI and cluster-side server:
//
//	signet verdict IMAGE...         may these images run? (exit 0 yes, 1 no, 2 error)
//	signet webhook                  the Kubernetes validating admission webhook
//	signet public-key --key REF     print the PEM public key of a KMS key
//	signet version
//
// Each subcommand's wiring is in its own file; the logic is in internal/.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/signet-dev/signet/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: signet <command> [flags]

commands:
  verdict IMAGE...   print each image's verdict; exit 0 allowed, 1 denied, 2 error
  webhook            run the Kubernetes validating admission webhook
  public-key         print the PEM public key of a KMS signing key
  version            print signet's version
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "verdict":
		return runVerdict(ctx, args[1:], stdout, stderr)
	case "webhook":
		return runWebhook(ctx, args[1:], stderr)
	case "public-key":
		return runPublicKey(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, version.Version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "signet: unknown command %q\n%s", args[0], usage)
	return 2
}
