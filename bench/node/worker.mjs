// The Node side of waauth's benchmarks (bench/node.py starts it; run `npm ci` here first).
//
// A long-lived process: one JSON command per line on stdin, one JSON reply per line on stdout
// ({"ok":true,...} or {"ok":false,"error":...}). Every timing is taken inside this process with
// performance.now() around the awaited store call, so Node's start-up and module loading are never
// inside a timing.
//
// Systems:
//   fs_*  Baileys' own useMultiFileAuthState (@whiskeysockets/baileys 7.0.0-rc14) on a local folder
//   pb_*  the npm package postgres-baileys 1.5.0 (one INSERT ... ON CONFLICT or SELECT per key,
//         through a node-postgres pool of 10 connections, opened and warmed before any timing)

import { Console } from 'node:console'
import { readFile } from 'node:fs/promises'
import { performance } from 'node:perf_hooks'
import { createInterface } from 'node:readline'

import { BufferJSON, Curve, useMultiFileAuthState } from '@whiskeysockets/baileys'
import pg from 'pg'
import { usePostgreSQLAuthState } from 'postgres-baileys'

// stdout carries only replies: anything a library logs goes to stderr
globalThis.console = new Console({ stdout: process.stderr, stderr: process.stderr })

const POOL_SIZE = 10 // node-postgres' default, what postgres-baileys gets from `new Pool(config)`

let pool = null
let preKeys = null // {id: {private, public}} made by Baileys' Curve.generateKeyPair
const specs = new Map() // name -> {creds, keys: {type: {id: value}}}
const fileStores = new Map() // folder -> what useMultiFileAuthState returned
const pbStores = new Map() // session id -> what usePostgreSQLAuthState returned

const timed = async fn => {
	const started = performance.now()
	await fn()
	return (performance.now() - started) / 1000
}

const spec = name => {
	const found = specs.get(name)
	if (!found) throw new Error(`no spec named ${name}`)
	return found
}

// Replace the store's creds object in place (saveCreds writes the object the store handed out),
// keeping the key order of the spec.
const setCreds = (state, creds) => {
	for (const k of Object.keys(state.creds)) delete state.creds[k]
	Object.assign(state.creds, creds)
}

const fileStore = async folder => {
	let store = fileStores.get(folder)
	if (!store) {
		store = await useMultiFileAuthState(folder)
		fileStores.set(folder, store)
	}
	return store
}

const pbStore = async session => {
	let store = pbStores.get(session)
	if (!store) {
		store = await usePostgreSQLAuthState(pool, session)
		pbStores.set(session, store)
	}
	return store
}

const readAll = (keys, groups) => Promise.all(Object.entries(groups).map(([type, ids]) => keys.get(type, ids)))

const commands = {
	async init({ pg: config }) {
		pool = new pg.Pool({ ...config, max: POOL_SIZE })
		// open every connection now, so that no timing includes a connection set-up
		const clients = await Promise.all(Array.from({ length: POOL_SIZE }, () => pool.connect()))
		for (const c of clients) c.release()
		await pool.query('CREATE TABLE IF NOT EXISTS auth_data (session_key VARCHAR(255) PRIMARY KEY, data TEXT NOT NULL)')
		const versions = {
			node: process.versions.node,
			baileys: JSON.parse(await readFile(new URL('./node_modules/@whiskeysockets/baileys/package.json', import.meta.url))).version,
			postgresBaileys: JSON.parse(await readFile(new URL('./node_modules/postgres-baileys/package.json', import.meta.url))).version,
			pg: JSON.parse(await readFile(new URL('./node_modules/pg/package.json', import.meta.url))).version
		}
		return { versions }
	},

	// Baileys 7's first login: INITIAL_PREKEY_COUNT (812) key pairs, as generateOrGetPreKeys makes them
	async prekeys({ count, first }) {
		preKeys = {}
		for (let i = 0; i < count; i++) preKeys[first + i] = Curve.generateKeyPair()
		return { json: JSON.stringify(preKeys, BufferJSON.replacer) }
	},

	async load_spec({ name, path }) {
		specs.set(name, JSON.parse(await readFile(path, 'utf-8'), BufferJSON.reviver))
		return {}
	},

	// useMultiFileAuthState writing a whole session (every key in one keys.set, then saveCreds)
	async fs_write_spec({ folder, spec: name }) {
		const { creds, keys } = spec(name)
		const { state, saveCreds } = await useMultiFileAuthState(folder)
		const seconds = await timed(async () => {
			await state.keys.set(keys)
			setCreds(state, creds)
			await saveCreds()
		})
		return { seconds }
	},

	async pb_write_spec({ session, spec: name }) {
		const { creds, keys } = spec(name)
		const { state, saveCreds } = await pbStore(session)
		const seconds = await timed(async () => {
			await state.keys.set(keys)
			setCreds(state, creds)
			await saveCreds()
		})
		return { seconds }
	},

	// W1: keys.set of the pre-keys in one call, into a new session whose creds are already saved
	async fs_w1({ folder }) {
		const { state, saveCreds } = await useMultiFileAuthState(folder)
		await saveCreds()
		return { seconds: await timed(() => state.keys.set({ 'pre-key': preKeys })) }
	},

	async pb_w1({ session }) {
		const { state, saveCreds } = await usePostgreSQLAuthState(pool, session)
		await saveCreds()
		return { seconds: await timed(() => state.keys.set({ 'pre-key': preKeys })) }
	},

	// W2: keys.get of some ids of one type
	async fs_get({ folder, type, ids }) {
		const { state } = await fileStore(folder)
		let got
		const seconds = await timed(async () => {
			got = await state.keys.get(type, ids)
		})
		return { seconds, found: Object.values(got).filter(v => v).length }
	},

	async pb_get({ session, type, ids }) {
		const { state } = await pbStore(session)
		let got
		const seconds = await timed(async () => {
			got = await state.keys.get(type, ids)
		})
		return { seconds, found: Object.values(got).filter(v => v).length }
	},

	// R: every key of a session, one keys.get per type (all types at once)
	async fs_read_all({ folder, groups }) {
		const { state } = await fileStore(folder)
		let got
		const seconds = await timed(async () => {
			got = await readAll(state.keys, groups)
		})
		return { seconds, found: got.reduce((n, g) => n + Object.values(g).filter(v => v).length, 0) }
	},

	async pb_read_all({ session, groups }) {
		const { state } = await pbStore(session)
		let got
		const seconds = await timed(async () => {
			got = await readAll(state.keys, groups)
		})
		return { seconds, found: got.reduce((n, g) => n + Object.values(g).filter(v => v).length, 0) }
	},

	async close() {
		if (pool) await pool.end()
		return {}
	}
}

const reply = obj => new Promise(resolve => process.stdout.write(JSON.stringify(obj) + '\n', resolve))

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
for await (const line of lines) {
	if (!line.trim()) continue
	let request
	try {
		request = JSON.parse(line)
		const handler = commands[request.cmd]
		if (!handler) throw new Error(`unknown command ${request.cmd}`)
		const result = await handler(request)
		await reply({ ok: true, ...result })
		if (request.cmd === 'close') break
	} catch (error) {
		await reply({ ok: false, error: String(error?.stack ?? error) })
	}
}
process.exit(0)
