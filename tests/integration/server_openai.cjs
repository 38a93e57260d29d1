// The official OpenAI client library against sparsetf-dist --serve (run by server_clients.py
// --part openai, which checks the printed answers against --prompt runs).
// usage: NODE_PATH=<dir with node_modules> node server_openai.cjs BASE_URL REQUEST_JSON
const OpenAI = require('openai');

async function main() {
  const [baseURL, reqJson] = process.argv.slice(2);
  const req = JSON.parse(reqJson);
  const client = new OpenAI({ baseURL, apiKey: 'test-key', maxRetries: 0, timeout: 60000 });
  const out = {};
  // completions, whole and streamed
  const c = await client.completions.create({ ...req.completion });
  out.completion = { text: c.choices[0].text, token_ids: c.choices[0].token_ids,
                     finish: c.choices[0].finish_reason, usage: c.usage };
  const stream = await client.completions.create({ ...req.completion, stream: true });
  let text = '', ids = [], events = 0;
  for await (const chunk of stream) {
    events++;
    text += chunk.choices[0].text;
    ids = ids.concat(chunk.choices[0].token_ids || []);
  }
  out.completion_stream = { text, token_ids: ids, events };
  // chat, streamed
  const chat = await client.chat.completions.create({ ...req.chat, stream: true });
  let ctext = '', role = null;
  for await (const chunk of chat) {
    const d = chunk.choices[0] ? chunk.choices[0].delta : {};
    if (d.role) role = d.role;
    ctext += d.content || '';
  }
  out.chat_stream = { text: ctext, role };
  // a bad request surfaces as the library's BadRequestError with the field
  try {
    await client.completions.create({ ...req.completion, temperature: 7 });
    out.bad = null;
  } catch (e) {
    out.bad = { status: e.status, param: e.param, type: e.type };
  }
  const models = await client.models.list();
  out.models = models.data.map((m) => m.id);
  console.log(JSON.stringify(out));
}

main().catch((e) => { console.error(e); process.exit(1); });
