package imagebuild

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// versionVar is the variable `go build -X` sets to the version.
const versionVar = "github.com/signet-dev/signet/internal/version.Version"

// goEnv returns the GOOS, GOARCH and per-architecture level for p. The level
// is always set, so that an ambient GOAMD64 or GOARM cannot change the binary.
func goEnv(p v1.Platform) ([]string, error) {
	if p.OS != "linux" {
		return nil, fmt.Errorf("platform %s: only linux images are built", p)
	}
	env := []string{"GOOS=" + p.OS, "GOARCH=" + p.Architecture}
	switch p.Architecture {
	case "amd64":
		switch p.Variant {
		case "", "v1", "v2", "v3", "v4":
			env = append(env, "GOAMD64="+or(p.Variant, "v1"))
		default:
			return nil, fmt.Errorf("platform %s: amd64 variant %q: want v1 to v4", p, p.Variant)
		}
	case "arm64":
		if p.Variant != "" && p.Variant != "v8" {
			return nil, fmt.Errorf("platform %s: arm64 variant %q: want v8", p, p.Variant)
		}
		env = append(env, "GOARM64=v8.0")
	case "arm":
		switch p.Variant {
		case "", "v7":
			env = append(env, "GOARM=7")
		case "v6":
			env = append(env, "GOARM=6")
		default:
			return nil, fmt.Errorf("platform %s: arm variant %q: want v6 or v7", p, p.Variant)
		}
	case "":
		return nil, fmt.Errorf("platform %s: no architecture", p)
	default:
		if p.Variant != "" {
			return nil, fmt.Errorf("platform %s: variants are only understood for amd64, arm64 and arm", p)
		}
	}
	return env, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// goBuild builds Package of the module in dir for p, statically, and returns
// the binary.
func goBuild(ctx context.Context, dir string, p v1.Platform, version string) ([]byte, error) {
	env, err := goEnv(p)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "signet-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "signet")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath",
		"-ldflags", "-s -w -X "+versionVar+"="+version,
		"-o", out, Package)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), append([]string{"CGO_ENABLED=0"}, env...)...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go build %s for %s: %w: %s", Package, p, err, strings.TrimSpace(log.String()))
	}
	return os.ReadFile(out)
}
