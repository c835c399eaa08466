import { empty } from "../dom";
import type { Ctx } from "../router";

/** graphView is not built yet. */
export function graphView({ root }: Ctx): void {
  root.append(empty("This view is not built yet."));
}
