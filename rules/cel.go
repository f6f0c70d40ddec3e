package rules

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"cel.dev/cel-go/cel"
)

// celCostLimit bounds the work one expression may do per evaluation. Expressions over a
// version's metrics, params and tags cost well under a hundred; the limit stops a
// comprehension over a huge map from stalling the reconciler.
const celCostLimit = 10_000

// maxExprLen bounds an expression's source.
const maxExprLen = 4096

// newCELEnv declares the variables an expression sees: metrics (string to double),
// params and tags (string to string).
func newCELEnv() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("metrics", cel.MapType(cel.StringType, cel.DoubleType)),
		cel.Variable("params", cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable("tags", cel.MapType(cel.StringType, cel.StringType)),
	)
}

// compileCEL type-checks an expression, requires it to return a bool, and prepares it
// with the cost limit.
func compileCEL(env *cel.Env, expr string) (cel.Program, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, errors.New("the expression is empty")
	}
	if len(expr) > maxExprLen {
		return nil, fmt.Errorf("the expression is %d bytes long, more than %d", len(expr), maxExprLen)
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, errors.New(strings.ReplaceAll(iss.Err().Error(), "\n", " "))
	}
	if ast.OutputType() != cel.BoolType {
		return nil, fmt.Errorf("the expression returns %s; it must return a bool (true passes)", ast.OutputType())
	}
	return env.Program(ast, cel.CostLimit(celCostLimit))
}

// evalCEL runs an expression. Metrics that are NaN or infinite are left out, so an
// expression reading one fails like one reading an absent key: the check is missing.
func evalCEL(prg cel.Program, ev *Evidence) (bool, error) {
	metrics := make(map[string]float64, len(ev.Metrics))
	for k, v := range ev.Metrics {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			metrics[k] = v
		}
	}
	out, _, err := prg.Eval(map[string]any{
		"metrics": metrics,
		"params":  nonNil(ev.Params),
		"tags":    ev.tags(),
	})
	if err != nil {
		return false, err
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("the expression returned %v, not a bool", out.Value())
	}
	return b, nil
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
