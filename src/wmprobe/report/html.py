"""The self-contained HTML page: figures inline (base64 PNG), a sortable table, no network.

The page carries a tiny self-test: opened with ``#selftest`` it records script errors (window ``error``
events in the capture phase, so failed resources count too, and ``console.error`` calls), checks that every
figure decoded and is not blank (grey-level spread of its pixels on a canvas), clicks a numeric column
header twice and checks the order, measures where the verdict paragraph, the headline figure and the first
table sit on the page (``layout``: their top in CSS pixels), and writes the result as JSON
into ``<pre id="selftest">``. Headless Chromium's ``--dump-dom`` reads it back (tests/report/test_report.py).
"""
from __future__ import annotations

import base64
import html
from typing import Sequence

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1180px;
     padding:24px;color:#1d1d1f}
h1{font-size:26px;margin:0 0 4px} h2{font-size:19px;margin:32px 0 8px;border-bottom:1px solid #ddd}
.sub{color:#666;margin:0 0 16px} .note{color:#555;font-size:13px}
table{border-collapse:collapse;font-size:13px;margin:8px 0} .tablewrap{overflow-x:auto;max-width:100%}
th,td{padding:4px 8px;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left} th{cursor:pointer;background:#f6f6f6;user-select:none}
th.sorted-asc::after{content:" \\25B2"} th.sorted-desc::after{content:" \\25BC"}
figure{margin:12px 0} figure img{max-width:100%;border:1px solid #eee} figcaption{color:#555;font-size:13px}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:12px}
pre{background:#f6f6f6;padding:10px;overflow:auto;font-size:12px;max-height:420px}
.bad{color:#b00020} .good{color:#0a7d32} h3{font-size:16px;margin:20px 0 6px}
ul.findings{background:#f7f9fc;border:1px solid #dde5f0;border-radius:6px;padding:10px 10px 10px 30px}
ul.findings li{margin:3px 0}
table.plain td:last-child{white-space:normal;text-align:left;min-width:240px}
p.verdict{background:#fffbea;border:1px solid #eadfa8;border-radius:6px;padding:10px 14px;font-size:15px}
figure#headline-figure img{max-width:860px}
"""

JS = r"""
(function(){
  var errors=[];
  window.addEventListener('error',function(e){errors.push(String(e.message||(e.target&&e.target.src)||e));},true);
  var cerr=console.error; console.error=function(){errors.push(Array.prototype.join.call(arguments,' '));
    return cerr.apply(console,arguments);};
  function cellValue(td){var v=td.getAttribute('data-v'); if(v===null){v=td.textContent;}
    var n=parseFloat(v); return isNaN(n)?v.toLowerCase():n;}
  function sortBy(th){
    var table=th.closest('table'), idx=Array.prototype.indexOf.call(th.parentNode.children,th);
    var asc=!th.classList.contains('sorted-asc');
    table.querySelectorAll('th').forEach(function(h){h.classList.remove('sorted-asc','sorted-desc');});
    th.classList.add(asc?'sorted-asc':'sorted-desc');
    var body=table.tBodies[0], rows=Array.prototype.slice.call(body.rows);
    rows.sort(function(a,b){var x=cellValue(a.cells[idx]),y=cellValue(b.cells[idx]);
      if(typeof x!==typeof y){return (typeof x==='number')?-1:1;}
      return (x<y?-1:x>y?1:0)*(asc?1:-1);});
    rows.forEach(function(r){body.appendChild(r);});
  }
  document.querySelectorAll('table.sortable th').forEach(function(th){
    th.addEventListener('click',function(){sortBy(th);});});
  window.wmprobeSort=sortBy;
  if(location.hash==='#selftest'){
    window.addEventListener('load',function(){
      var imgs=Array.prototype.slice.call(document.querySelectorAll('figure img'));
      var broken=imgs.filter(function(i){return !(i.complete&&i.naturalWidth>0);}).map(function(i){return i.alt;});
      var blank=[];  // pixel check: a figure whose grey levels barely vary is blank
      imgs.forEach(function(i){
        if(!(i.complete&&i.naturalWidth>0)){return;}
        try{
          var c=document.createElement('canvas'); c.width=i.naturalWidth; c.height=i.naturalHeight;
          var g=c.getContext('2d'); g.drawImage(i,0,0);
          var d=g.getImageData(0,0,c.width,c.height).data, n=0, s=0, s2=0;
          for(var j=0;j<d.length;j+=28){var v=(d[j]+d[j+1]+d[j+2])/3; n++; s+=v; s2+=v*v;}
          if(Math.sqrt(Math.max(0,s2/n-(s/n)*(s/n)))<5){blank.push(i.alt);}
        }catch(err){errors.push('pixel check: '+err);}
      });
      var sorted=null, table=document.querySelector('table.sortable');
      if(table){
        var th=table.querySelector('th[data-numeric]'), idx=Array.prototype.indexOf.call(th.parentNode.children,th);
        sortBy(th); sortBy(th);
        var vals=Array.prototype.map.call(table.tBodies[0].rows,function(r){return cellValue(r.cells[idx]);})
                 .filter(function(v){return typeof v==='number';});
        sorted=vals.every(function(v,i){return i===0||vals[i-1]>=v;});
      }
      function top(el){return el?el.getBoundingClientRect().top+window.scrollY:null;}
      var layout={verdict:top(document.getElementById('verdict')),
                  headline:top(document.getElementById('headline-figure')),
                  first_table:top(document.querySelector('table'))};
      var out=document.getElementById('selftest');
      out.textContent=JSON.stringify({errors:errors,figures:imgs.length,broken:broken,blank:blank,sorted:sorted,
                                      layout:layout});
    });
  }
})();
"""


def esc(x: object) -> str:
    return html.escape(str(x), quote=True)


def figure_html(png: bytes, title: str, caption: str, fig_id: str | None = None) -> str:
    b64 = base64.b64encode(png).decode()
    ident = f' id="{esc(fig_id)}"' if fig_id else ""
    return (f'<figure{ident}><img alt="{esc(title)}" src="data:image/png;base64,{b64}">'
            f"<figcaption><b>{esc(title)}.</b> {esc(caption)}</figcaption></figure>")


def table_html(columns: Sequence[str], rows: Sequence[Sequence[object]], numeric: Sequence[bool],
               css_class: str = "sortable") -> str:
    """A sortable table; numeric cells carry their raw value in ``data-v`` so sorting ignores formatting."""
    head = "".join(f"<th{' data-numeric' if n else ''}>{esc(c)}</th>" for c, n in zip(columns, numeric))
    body = []
    for r in rows:
        cells = []
        for v, n in zip(r, numeric):
            if n and isinstance(v, tuple):  # (raw, shown)
                cells.append(f'<td data-v="{esc(v[0])}">{esc(v[1])}</td>')
            else:
                cells.append(f"<td>{esc(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="tablewrap"><table class="{css_class}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def page(title: str, subtitle: str, sections: Sequence[tuple[str, str]]) -> str:
    parts = [f"<h2>{esc(h)}</h2>\n{body}" for h, body in sections]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{esc(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{esc(title)}</h1><p class=\"sub\">{esc(subtitle)}</p>\n"
            + "\n".join(parts)
            + f'\n<pre id="selftest" hidden></pre><script>{JS}</script></body></html>\n')
