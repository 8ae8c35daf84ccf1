// Package testenv starts the real components signet's tests run against, all
// on 127.0.0.1: an in-process OCI registry, local-kms, and dynalite.
//
// Each call starts a fresh instance owned by the test and stopped by its
// cleanup. The external programs are installed by `make tools`
// (scripts/tools.sh); a missing one fails the test with that hint.
package testenv

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/signet-dev/signet/internal/verdict"
)

// Versions of the tools, kept in step with scripts/tools.sh.
const (
	LocalKMSVersion = "v0.0.0-20260228092603-2a5e92d09ab6"
	RIEVersion      = "v0.0.0-20261030222936-bef5c4ba774d"
	Cosign2Version  = "v2.6.5"
	Cosign3Version  = "v3.1.3"
	KubeVersion     = "v1.37.2"
	Region          = "us-east-1"
)

// Root returns the module root (the folder holding go.mod).
func Root() string {
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			if b, _ := os.ReadFile(filepath.Join(d, "go.mod")); strings.Contains(string(b), "module github.com/signet-dev/signet\n") {
				return d
			}
		}
		if d == filepath.Dir(d) {
			return dir
		}
	}
}

// ToolsDir is where scripts/tools.sh caches the programs.
func ToolsDir() string {
	if d := os.Getenv("SIGNET_TOOLS"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "signet", "tools")
}

// Tool returns the path of a cached tool such as Tool(t, "cosign", Cosign2Version).
func Tool(t testing.TB, name, version string) string {
	t.Helper()
	p := filepath.Join(ToolsDir(), name+"-"+version, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s %s is not installed at %s: run `make tools` (scripts/tools.sh)", name, version, p)
	}
	return p
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// WaitTCP waits until addr accepts connections.
func WaitTCP(t testing.TB, addr string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s after %s", addr, within)
}

// Start runs a program owned by the test; it dies with the test binary.
func Start(t testing.TB, env []string, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	logf, err := os.CreateTemp(t.TempDir(), filepath.Base(name)+"-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("--- %s log (tail):\n%s", filepath.Base(name), b)
		}
	})
	return cmd
}

// Registry starts an in-process OCI registry on 127.0.0.1, with the referrers
// API, and returns its host:port.
func Registry(t testing.TB) string {
	t.Helper()
	s := httptest.NewServer(registry.New(
		registry.Logger(log.New(io.Discard, "", 0)),
		registry.WithReferrersSupport(true),
	))
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

// AWSEnv sets the AWS environment the SDK needs to talk to the emulators and
// clears the ambient one (profiles, CA bundle, real endpoints).
func AWSEnv(t testing.TB) {
	t.Helper()
	for _, k := range []string{"AWS_PROFILE", "AWS_CA_BUNDLE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE",
		"AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("AWS_REGION", Region)
	t.Setenv("AWS_ACCESS_KEY_ID", "signet-test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "signet-test")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
}

// Static returns an aws.Config for an emulator at endpoint.
func Static() aws.Config {
	return aws.Config{
		Region:      Region,
		Credentials: credentials.NewStaticCredentialsProvider("signet-test", "signet-test", ""),
		HTTPClient:  &http.Client{Timeout: 30 * time.Second},
	}
}

// KMS is a running local-kms with one ECC_NIST_P256 signing key.
type KMS struct {
	Endpoint string // http://127.0.0.1:PORT
	Alias    string // alias/NAME
	KeyRef   string // awskms:///alias/NAME
	KeyARN   string
	PEM      []byte // the public key
	Client   *kms.Client
}

// StartKMS starts local-kms, creates a signing key with an alias, and sets
// AWS_ENDPOINT_URL_KMS so sigstore's awskms:/// references reach it.
func StartKMS(t testing.TB) *KMS {
	t.Helper()
	port := FreePort(t)
	bin := Tool(t, "local-kms", LocalKMSVersion)
	Start(t, []string{fmt.Sprintf("PORT=%d", port), "KMS_DATA_PATH=" + t.TempDir(), "KMS_REGION=" + Region}, bin)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	WaitTCP(t, addr, 20*time.Second)
	k := &KMS{Endpoint: "http://" + addr}
	k.Client = kms.NewFromConfig(Static(), func(o *kms.Options) { o.BaseEndpoint = aws.String(k.Endpoint) })
	k.Alias = "alias/signet-test"
	k.KeyARN, k.PEM = CreateKey(t, k.Client, k.Alias)
	k.KeyRef = "awskms:///" + k.Alias
	t.Setenv("AWS_ENDPOINT_URL_KMS", k.Endpoint)
	return k
}

// CreateKey creates an ECC_NIST_P256 SIGN_VERIFY key with alias and returns
// its ARN and PEM public key.
func CreateKey(t testing.TB, c *kms.Client, alias string) (string, []byte) {
	t.Helper()
	ctx := context.Background()
	out, err := c.CreateKey(ctx, &kms.CreateKeyInput{
		KeySpec:  kmstypes.KeySpecEccNistP256,
		KeyUsage: kmstypes.KeyUsageTypeSignVerify,
	})
	if err != nil {
		t.Fatalf("creating KMS key: %v", err)
	}
	if _, err := c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: &alias, TargetKeyId: out.KeyMetadata.KeyId}); err != nil {
		t.Fatalf("creating alias %s: %v", alias, err)
	}
	pub, err := c.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: out.KeyMetadata.KeyId})
	if err != nil {
		t.Fatalf("reading public key: %v", err)
	}
	if _, err := x509.ParsePKIXPublicKey(pub.PublicKey); err != nil {
		t.Fatalf("parsing public key: %v", err)
	}
	return *out.KeyMetadata.Arn, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub.PublicKey})
}

// Dynamo is a running dynalite with one verdict table.
type Dynamo struct {
	Endpoint string
	Table    string
	Client   *dynamodb.Client
	Store    *verdict.DynamoStore
	cmd      *exec.Cmd
}

// Stop kills dynalite before the test ends, to test failures of the store.
func (d *Dynamo) Stop() {
	_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
}

// StartDynamo starts dynalite, creates the verdict table, and sets
// AWS_ENDPOINT_URL_DYNAMODB.
func StartDynamo(t testing.TB) *Dynamo {
	t.Helper()
	cli := filepath.Join(Root(), "node_modules", "dynalite", "cli.js")
	if _, err := os.Stat(cli); err != nil {
		t.Fatalf("dynalite is not installed at %s: run `make tools` (npm ci)", cli)
	}
	port := FreePort(t)
	cmd := Start(t, nil, "node", cli, "--host", "127.0.0.1", "--port", fmt.Sprint(port))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	WaitTCP(t, addr, 20*time.Second)
	d := &Dynamo{Endpoint: "http://" + addr, Table: "signet-verdicts", cmd: cmd}
	d.Client = dynamodb.NewFromConfig(Static(), func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(d.Endpoint) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := verdict.CreateTable(ctx, d.Client, d.Table); err != nil {
		t.Fatal(err)
	}
	d.Store = verdict.NewDynamoStore(d.Client, d.Table)
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", d.Endpoint)
	return d
}
