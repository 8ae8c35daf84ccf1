package main

import (
	"context"
	"crypto"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature/kms"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/aws" // awskms:// references
	"github.com/sigstore/sigstore/pkg/signature/options"
)

func runPublicKey(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("signet public-key", flag.ContinueOnError)
	fs.SetOutput(stderr)
	key := fs.String("key", os.Getenv("SIGNET_KMS_KEY"), "KMS key reference, e.g. awskms:///alias/signet (env SIGNET_KMS_KEY)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *key == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: signet public-key --key awskms:///alias/NAME")
		return 2
	}
	sv, err := kms.Get(ctx, *key, crypto.SHA256)
	if err != nil {
		fmt.Fprintf(stderr, "signet public-key: opening %s: %v\n", *key, err)
		return 1
	}
	pub, err := sv.PublicKey(options.WithContext(ctx))
	if err != nil {
		fmt.Fprintf(stderr, "signet public-key: reading the public key of %s: %v\n", *key, err)
		return 1
	}
	pem, err := cryptoutils.MarshalPublicKeyToPEM(pub)
	if err != nil {
		fmt.Fprintf(stderr, "signet public-key: encoding the public key of %s: %v\n", *key, err)
		return 1
	}
	_, _ = stdout.Write(pem)
	return 0
}
