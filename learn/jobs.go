package learn

import (
	"context"

	"github.com/stackprint/stackprint/db"
)

// Progress is where a resumed learn run finds what earlier runs finished.
type Progress interface {
	LearnFinished(ctx context.Context, role string) (map[string]bool, error)
}

// PendingJobs are the entries of the block and top lists (keyed by
// db.RoleBlock and db.RoleTop) that no earlier run finished, block list
// first; skipped counts the finished ones.
func PendingJobs(ctx context.Context, p Progress, lists map[string][]db.ListEntry) (jobs []Job, skipped int, err error) {
	for _, role := range []string{db.RoleBlock, db.RoleTop} {
		done, err := p.LearnFinished(ctx, role)
		if err != nil {
			return nil, 0, err
		}
		for _, e := range lists[role] {
			if done[e.Key] {
				skipped++
				continue
			}
			jobs = append(jobs, Job{Role: role, Entry: e})
		}
	}
	return jobs, skipped, nil
}
