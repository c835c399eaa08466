import { empty } from "../dom";
import type { Ctx } from "../router";

/** tracesView is not built yet. */
export function tracesView({ root }: Ctx): void {
  root.append(empty("This view is not built yet."));
}
