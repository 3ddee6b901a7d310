package backfill

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"slices"
)

// RunName identifies a backfill pass by its files' contents (size and the
// hash of their first 64 KiB, in sorted order), so running the same files
// again, even renamed by a rotation, resumes the pass.
func RunName(files []string) (string, error) {
	var ids []string
	for _, p := range files {
		f, err := os.Open(p)
		if err != nil {
			return "", err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return "", err
		}
		h := sha256.New()
		_, err = io.Copy(h, io.LimitReader(f, 64<<10))
		f.Close()
		if err != nil {
			return "", fmt.Errorf("%s: %w", p, err)
		}
		ids = append(ids, fmt.Sprintf("%d:%x", st.Size(), h.Sum(nil)))
	}
	slices.Sort(ids)
	h := sha256.New()
	for _, id := range ids {
		h.Write([]byte(id + "\n"))
	}
	return "files:" + hex.EncodeToString(h.Sum(nil))[:32], nil
}
