// Command localstack is the local stack's helper for scripts/stack.sh and
// scripts/demo.sh: it creates the KMS key and verdict table idempotently,
// builds and pushes a demo image from real files, fills sample events with a
// real digest, and shows a verdict with its audit trail.
//
//	localstack init -kms URL -dynamo URL -alias alias/NAME -table NAME -pem FILE
//	localstack push-image -ref HOST/REPO:TAG FILE...
//	localstack event -sample events/push.json -repo REPO -digest DIGEST [-tag TAG]
//	localstack verdict -dynamo URL -table NAME -image HOST/REPO@DIGEST
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/signet-dev/signet/internal/verdict"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: localstack init|push-image|event|verdict ...")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var err error
	switch os.Args[1] {
	case "init":
		err = initStack(ctx, os.Args[2:])
	case "push-image":
		err = pushImage(ctx, os.Args[2:])
	case "event":
		err = event(os.Args[2:])
	case "verdict":
		err = showVerdict(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "localstack:", err)
		os.Exit(1)
	}
}

func awsConfig() aws.Config {
	return aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("local", "local", "")}
}

// initStack creates the signing key and alias unless the alias exists, the
// verdict table unless it exists, and writes the public key PEM.
func initStack(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	kmsURL := fs.String("kms", "", "local-kms endpoint")
	dynURL := fs.String("dynamo", "", "dynalite endpoint")
	alias := fs.String("alias", "alias/signet", "KMS alias")
	table := fs.String("table", "signet-verdicts", "verdict table")
	pemPath := fs.String("pem", "", "where to write the public key")
	if err := fs.Parse(args); err != nil {
		return err
	}
	kc := kms.NewFromConfig(awsConfig(), func(o *kms.Options) { o.BaseEndpoint = kmsURL })
	pub, err := kc.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: alias})
	var nf *kmstypes.NotFoundException
	if errors.As(err, &nf) {
		k, err := kc.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: kmstypes.KeySpecEccNistP256, KeyUsage: kmstypes.KeyUsageTypeSignVerify, Description: aws.String("signet local signing key")})
		if err != nil {
			return fmt.Errorf("creating key: %w", err)
		}
		if _, err := kc.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: alias, TargetKeyId: k.KeyMetadata.KeyId}); err != nil {
			return fmt.Errorf("creating alias: %w", err)
		}
		pub, err = kc.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: alias})
		if err != nil {
			return fmt.Errorf("reading public key: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("reading public key of %s: %w", *alias, err)
	}
	if _, err := x509.ParsePKIXPublicKey(pub.PublicKey); err != nil {
		return fmt.Errorf("parsing public key: %w", err)
	}
	if err := os.WriteFile(*pemPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub.PublicKey}), 0o644); err != nil {
		return err
	}
	dc := dynamodb.NewFromConfig(awsConfig(), func(o *dynamodb.Options) { o.BaseEndpoint = dynURL })
	if err := verdict.CreateTable(ctx, dc, *table); err != nil {
		return err
	}
	fmt.Println(*pub.KeyId)
	return nil
}

// pushImage builds a one-layer image holding files under /usr/local/bin and
// pushes it by tag; it prints the digest.
func pushImage(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("push-image", flag.ContinueOnError)
	refStr := fs.String("ref", "", "HOST/REPO:TAG")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ref, err := name.NewTag(*refStr)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	var entry string
	for _, f := range fs.Args() {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		p := "usr/local/bin/" + filepath.Base(f)
		if entry == "" {
			entry = "/" + p
		}
		if err := tw.WriteHeader(&tar.Header{Name: p, Mode: 0o755, Size: int64(len(b)), ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(mutate.ConfigMediaType(empty.Image, types.OCIConfigJSON), types.OCIManifestSchema1), layer)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Entrypoint = []string{entry}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		return err
	}
	h, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Println(h.String())
	return nil
}

// event prints a sample event with the repository, digest and tag replaced.
func event(args []string) error {
	fs := flag.NewFlagSet("event", flag.ContinueOnError)
	sample := fs.String("sample", "events/push.json", "sample event")
	repo := fs.String("repo", "", "repository name")
	digest := fs.String("digest", "", "image digest")
	tag := fs.String("tag", "", "image tag (empty: keep the sample's)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	raw, err := os.ReadFile(*sample)
	if err != nil {
		return err
	}
	var ev map[string]any
	if err := json.Unmarshal(raw, &ev); err != nil {
		return fmt.Errorf("%s: %w", *sample, err)
	}
	d, _ := ev["detail"].(map[string]any)
	if d == nil {
		return fmt.Errorf("%s has no detail", *sample)
	}
	d["repository-name"], d["image-digest"] = *repo, *digest
	if *tag != "" {
		d["image-tag"] = *tag
	}
	ev["time"] = time.Now().UTC().Format(time.RFC3339)
	ev["id"] = fmt.Sprintf("local-%d", time.Now().UnixNano())
	out, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	fmt.Println(string(out))
	return nil
}

// showVerdict prints the verdict item and its audit trail as JSON.
func showVerdict(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("verdict", flag.ContinueOnError)
	dynURL := fs.String("dynamo", "", "dynalite endpoint")
	table := fs.String("table", "signet-verdicts", "verdict table")
	image := fs.String("image", "", "HOST/REPO@DIGEST")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ref, err := name.NewDigest(*image)
	if err != nil {
		return err
	}
	store := verdict.NewDynamoStore(dynamodb.NewFromConfig(awsConfig(), func(o *dynamodb.Options) { o.BaseEndpoint = dynURL }), *table)
	v, err := store.Get(ctx, ref.Context().Name(), ref.DigestStr())
	if err != nil {
		return err
	}
	hist, err := store.History(ctx, ref.Context().Name(), ref.DigestStr())
	if err != nil {
		return err
	}
	out, _ := json.MarshalIndent(map[string]any{"verdict": v, "audit": hist}, "", "  ")
	fmt.Println(strings.TrimSpace(string(out)))
	return nil
}
