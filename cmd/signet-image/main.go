// Command signet-image builds and pushes signet's image without Docker; see internal/imagebuild.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/signet-dev/signet/internal/ecrauth"
	"github.com/signet-dev/signet/internal/imagebuild"
)

func main() {
	image := flag.String("image", "", "reference to push to, such as ACCOUNT.dkr.ecr.REGION.amazonaws.com/signet-webhook:v1 (required)")
	platforms := flag.String("platforms", "linux/amd64,linux/arm64", "comma-separated platforms")
	version := flag.String("version", "dev", "version linked into the binary and set as a label")
	caCerts := flag.String("ca-certs", "", "PEM bundle to copy into the image (default: this machine's system bundle)")
	flag.Parse()
	if err := run(*image, *platforms, *version, *caCerts); err != nil {
		fmt.Fprintln(os.Stderr, "signet-image:", err)
		os.Exit(1)
	}
}

func run(image, platforms, version, caCerts string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ref, err := name.ParseReference(image)
	if err != nil {
		return fmt.Errorf("-image %q: %w", image, err)
	}
	ps, err := imagebuild.ParsePlatforms(platforms)
	if err != nil {
		return err
	}
	// AWS settings matter only for ECR; without them other registries still work.
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil && ecrauth.IsECR(ref.Context().RegistryStr()) {
		return fmt.Errorf("loading AWS config for %s: %w", ref.Context().RegistryStr(), err)
	}
	idx, err := imagebuild.Build(ctx, ".", ps, imagebuild.WithVersion(version), imagebuild.WithCACertificates(caCerts))
	if err != nil {
		return err
	}
	keychain := authn.NewMultiKeychain(authn.DefaultKeychain, ecrauth.NewKeychain(cfg))
	d, err := imagebuild.Push(ctx, ref, idx, remote.WithAuthFromKeychain(keychain))
	if err != nil {
		return err
	}
	fmt.Println(imagebuild.Pinned(ref, d))
	return nil
}
