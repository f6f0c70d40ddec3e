package transitions

import (
	"context"
	"sync"

	"github.com/modelgate/modelgate/mlflow"
)

// modelCache is what planning reads while a pass works through one model's versions,
// oldest first: a run, and which version holds an alias, are read once. Version after
// version, the gate compares with the same champion (or with the one just promoted,
// whose run was read a moment ago as the candidate's), so without it each decision read
// the champion's alias and run again: two requests of about nine (docs/performance.md).
//
// It lives for one model in one pass. An alias' holder is reused only until a plan
// writes anything (forgetAliases): the holder's tags are part of the answer, and a plan
// may have changed them or moved the alias. A person's alias change during a run of
// plans that write nothing is seen by the next pass, as if it had come a moment later.
type modelCache struct {
	PlanReader
	mu      sync.Mutex
	runs    map[string]mlflow.Run
	aliases map[string]aliasHolder
}

// aliasHolder is an alias lookup's answer: the version, or MLflow's "not found".
type aliasHolder struct {
	mv  mlflow.ModelVersion
	err error
}

// maxCachedRuns bounds the runs a model's cache keeps: the champion's and the last few
// candidates' are the ones read again.
const maxCachedRuns = 8

func newModelCache(r PlanReader) *modelCache {
	return &modelCache{PlanReader: r, runs: map[string]mlflow.Run{}, aliases: map[string]aliasHolder{}}
}

// GetRun reads a run once.
func (c *modelCache) GetRun(ctx context.Context, runID string) (mlflow.Run, error) {
	c.mu.Lock()
	run, ok := c.runs[runID]
	c.mu.Unlock()
	if ok {
		return run, nil
	}
	run, err := c.PlanReader.GetRun(ctx, runID)
	if err != nil {
		return run, err
	}
	c.mu.Lock()
	if len(c.runs) >= maxCachedRuns {
		clear(c.runs)
	}
	c.runs[runID] = run
	c.mu.Unlock()
	return run, nil
}

// GetModelVersionByAlias reads an alias' holder once, until a plan writes.
func (c *modelCache) GetModelVersionByAlias(ctx context.Context, name, alias string) (mlflow.ModelVersion, error) {
	key := name + "@" + alias
	c.mu.Lock()
	h, ok := c.aliases[key]
	c.mu.Unlock()
	if ok {
		return h.mv, h.err
	}
	mv, err := c.PlanReader.GetModelVersionByAlias(ctx, name, alias)
	if err == nil || mlflow.IsNotFound(err) {
		c.mu.Lock()
		c.aliases[key] = aliasHolder{mv: mv, err: err}
		c.mu.Unlock()
	}
	return mv, err
}

// forgetAliases drops the aliases read: a plan wrote.
func (c *modelCache) forgetAliases() {
	c.mu.Lock()
	clear(c.aliases)
	c.mu.Unlock()
}
