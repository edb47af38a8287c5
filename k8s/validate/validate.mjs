// Reads Kubernetes objects as JSON on stdin and validates each FlinkDeployment against the
// operator's schema (@kubernetes-models/flink, generated from the operator's CRDs).
// Prints "ok <kind>/<name>" per object; exits 1 with the schema errors otherwise.
import { readFileSync } from "node:fs";
import { FlinkDeployment } from "@kubernetes-models/flink/flink.apache.org/v1beta1";

const objects = JSON.parse(readFileSync(0, "utf8"));
let failed = false;
for (const object of objects) {
  if (object.kind !== "FlinkDeployment") continue;
  try {
    new FlinkDeployment(object).validate();
    console.log(`ok ${object.kind}/${object.metadata.name}`);
  } catch (error) {
    failed = true;
    console.error(`${object.kind}/${object.metadata.name}: ${error.message}`);
  }
}
process.exit(failed ? 1 : 0);
