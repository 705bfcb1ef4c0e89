#!/usr/bin/env node
// The plugin's entry as installs before main.cjs named it: runs main.cjs
// (see there). New installs point at main.cjs, which starts faster.
import "./main.cjs";
