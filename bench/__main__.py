"""`make bench`: benchmarks whose figures go into the README (not timed tests)."""

import sys

from bench import eval_scaling


def main() -> int:
    print("## Program evaluation under mocks (ha stack + N agents)")
    print(eval_scaling.report(eval_scaling.run()))
    try:
        from bench import lab_bench
    except ImportError as e:  # the host-lab benchmarks need the lab package
        print(f"\n(host-lab benchmarks unavailable: {e})")
        return 0
    return lab_bench.main()


if __name__ == "__main__":
    sys.exit(main())
