import { empty } from "../dom";
import type { Ctx } from "../router";

/** canariesView is not built yet. */
export function canariesView({ root }: Ctx): void {
  root.append(empty("This view is not built yet."));
}
