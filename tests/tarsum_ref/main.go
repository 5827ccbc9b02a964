// tarsumref: reference tarsum calculator built on Docker's pkg/tarsum.
//
// Usage: tarsumref [-v] [-extra FILE] < layer.tar
//
// Prints one line per version: "<VersionName>: <tarsum string>".
// With -v, also prints the per-entry sums (in archive order) for each version.
// With -extra FILE, the file's bytes are passed as the "extra" payload to Sum()
// (legacy Docker used the v1 image JSON here).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/docker/docker/pkg/tarsum"
)

func main() {
	verbose := flag.Bool("v", false, "print per-entry sums")
	extraPath := flag.String("extra", "", "file whose bytes are the extra payload for Sum()")
	flag.Parse()

	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "read stdin:", err)
		os.Exit(1)
	}
	var extra []byte
	if *extraPath != "" {
		extra, err = os.ReadFile(*extraPath)
		if err != nil {
			fmt.Fprintln(os.Stderr, "read extra:", err)
			os.Exit(1)
		}
	}

	versions := []struct {
		label string
		v     tarsum.Version
	}{
		{"Version0", tarsum.Version0},
		{"Version1", tarsum.Version1},
		{"VersionDev", tarsum.VersionDev},
	}
	rc := 0
	for _, ver := range versions {
		// true = DisableCompression (the re-encoded output is discarded anyway).
		ts, err := tarsum.NewTarSum(bytes.NewReader(data), true, ver.v)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: NewTarSum: %v\n", ver.label, err)
			rc = 1
			continue
		}
		if _, err := io.Copy(io.Discard, ts); err != nil {
			fmt.Fprintf(os.Stderr, "%s: reading tar: %v\n", ver.label, err)
			rc = 1
			continue
		}
		if *verbose {
			sums := ts.GetSums()
			sums.SortByPos()
			for _, s := range sums {
				fmt.Printf("  %s entry %d %q %s\n", ver.label, s.Pos(), s.Name(), s.Sum())
			}
		}
		fmt.Printf("%s: %s\n", ver.label, ts.Sum(extra))
	}
	os.Exit(rc)
}
