"""The fixed words every piece of demo data is made of: the names of 达川区's towns and
of villages and communities, the characters of the synthetic province's names, people's
names, phone prefixes, and what issues say (the history generator's ledgers).

The demo centres (`dispatch.demo`) and the generated history (`logs.history`) both draw
from here, so the demo speaks with one voice.

Invariants: every table is a fixed tuple (or a mapping of them) with no duplicates
where names are sampled without replacement; the functions take every random choice
from the `random.Random` they are given, in a fixed order, so a seeded generator gives
the same words every run.
"""

from __future__ import annotations

import random
from typing import Final

# 达川区's streets (街道, codes 001–) and towns (镇, codes 100–), in code order.
DACHUAN_STREETS: Final = ("三里桥街道", "翠屏街道", "明月江街道", "杨柳街道")
DACHUAN_TOWNS: Final = (
    "河市镇",
    "百节镇",
    "石桥镇",
    "堡子镇",
    "赵家镇",
    "万家镇",
    "麻柳镇",
    "管村镇",
    "石梯镇",
    "渡市镇",
    "大堰镇",
    "亭子镇",
    "福善镇",
    "金垭镇",
    "碑庙镇",
    "景市镇",
)

# Stems of village (村) and community (社区) names as they are common in eastern Sichuan.
# Each tuple has no duplicates, so sampling without replacement gives names unique
# within a town; a 村 and a 社区 never clash because their suffixes differ.
VILLAGE_STEMS: Final = (
    "青龙",
    "白鹤",
    "金山",
    "柏树",
    "双河",
    "凤凰",
    "桂花",
    "长岭",
    "龙滩",
    "新华",
    "和平",
    "永兴",
    "三合",
    "五星",
    "红旗",
    "光明",
    "大田",
    "高峰",
    "狮子",
    "马鞍",
    "观音",
    "堰塘",
    "桥亭",
    "清河",
    "碾盘",
    "莲花",
    "梨树",
    "龙泉",
    "石院",
    "黄桷",
    "罗家",
    "李家",
    "张家",
    "何家",
    "杨家",
    "陈家",
    "文家",
    "唐家",
    "胡家",
    "向家",
    "庙坝",
    "天池",
    "大湾",
    "新桥",
    "青杠",
    "松林",
    "竹园",
    "水口",
    "太平",
    "永安",
    "红岩",
    "石龙",
    "金龙",
    "银杏",
    "花园",
    "大石",
    "玉皇",
    "宝塔",
    "仁和",
    "万福",
    "百胜",
    "牛角",
    "鹿鸣",
    "铁山",
    "云台",
    "天星",
    "两河",
    "学堂",
    "长田",
    "回龙",
)
COMMUNITY_STEMS: Final = (
    "金山",
    "滨河",
    "南外",
    "北外",
    "西外",
    "朝阳",
    "文化",
    "塔沱",
    "凤凰",
    "柳林",
    "红星",
    "南坝",
    "西河",
    "东岳",
    "月亮湾",
    "华蓥",
    "明月",
    "翠屏",
    "青年",
    "书院",
    "钟楼",
    "荷叶",
    "新华",
    "长田",
    "双龙",
    "马家",
    "沿江",
    "河坝",
    "龙爪",
    "永兴",
)
# The second community of a town seat (the first is named after the town itself).
SEAT_COMMUNITY: Final = "新街社区"

# Characters for the synthetic province's names: a name stem is one of each, never the
# same character twice. 45 × 45 stems leave ample room to sample without replacement.
NAME_FIRST: Final = (
    "安宝北碧长城川翠大东丰凤福高广和河华金锦龙鹿明南平青清庆仁瑞三石双顺太天通万文西新兴阳永玉云中"
)
NAME_SECOND: Final = (
    "安坝北滨昌城川丰峰阜岗关海河和湖华江口林岭隆门宁平桥泉山水台塘田亭湾溪兴阳源岳寨州"
)

SURNAMES: Final = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜"
    "叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛段雷侯龙史陶黎"
    "贺顾毛郝龚邵万严覃武戴莫孔向汤"
)
GIVEN_NAMES: Final = (
    "建国",
    "志强",
    "秀英",
    "桂兰",
    "德华",
    "光明",
    "明",
    "军",
    "勇",
    "芳",
    "丽",
    "强",
    "伟",
    "敏",
    "静",
    "洪",
    "平",
    "红梅",
    "小红",
    "国庆",
    "德胜",
    "春华",
    "家明",
    "文",
    "兴华",
    "玉兰",
    "淑芬",
    "建华",
    "永红",
    "海燕",
    "晓东",
    "俊",
    "磊",
    "涛",
    "霞",
    "燕",
    "成刚",
    "志明",
    "国华",
    "学文",
    "明辉",
    "小平",
    "大军",
    "开富",
    "德明",
    "世清",
)
# Mobile prefixes of the three carriers. The middle four digits are always 0000, so a
# demo number looks fake at a glance (e.g. 13800004721) while passing phone validation.
PHONE_PREFIXES: Final = (
    "133",
    "135",
    "136",
    "137",
    "138",
    "139",
    "150",
    "151",
    "152",
    "153",
    "158",
    "159",
    "180",
    "181",
    "182",
    "183",
    "187",
    "188",
    "189",
)

# What issues say: the history generator's ledgers (logs/history.py).
DISPUTES: Final = (
    ("邻里纠纷", ("宅基地边界", "排水沟堵塞", "房屋漏水", "饲养家禽扰邻")),
    ("婚姻家庭", ("赡养老人", "家庭财产分割", "子女抚养")),
    ("土地山林", ("承包地边界", "林地权属", "土地流转租金")),
    ("劳资纠纷", ("拖欠工资", "工伤赔偿")),
    ("物业纠纷", ("物业费收取", "停车位占用")),
    ("债务纠纷", ("借款归还",)),
    ("征地拆迁", ("补偿款分配", "安置房分配")),
)
PLACES: Final = ("村道急弯处", "老旧民房", "河堤", "学校门口", "农贸市场", "山坪塘", "加油站旁")
HAZARDS: Final = ("山体滑坡", "墙体开裂", "电线私拉乱接", "燃气管道老化", "护栏缺失", "堤坝渗水")
LEADS: Final = ("有人组织非法集资", "疑似电信诈骗窝点", "外来人员聚集", "夜间非法采砂",
                "有人兜售假农药")  # fmt: skip
ANOMALIES: Final = ("视频画面中值班人员离岗", "网格员未按时巡查", "监控探头离线",
                    "值班电话无人接听", "调度时画面长时间黑屏")  # fmt: skip
OTHERS: Final = ("群众咨询低保政策", "反映道路照明不足", "申请使用调解室", "反映饮水管网水压低")
RESOLUTIONS: Final = {
    "dispute": ("经调解双方达成协议", "经村组干部调解，双方和解", "已引导走司法途径"),
    "hazard": ("已完成整改并复查", "已设置警示并完成加固"),
    "lead": ("已核实并移交派出所", "经核实情况不属实"),
    "anomaly": ("已督促整改，恢复正常", "已约谈相关人员"),
    "other": ("已答复群众", "已协调相关部门处理"),
}
ESCALATION_NOTES: Final = ("重大矛盾风险及时报告", "超出本级化解能力，报请上级协调")


def person(rng: random.Random) -> str:
    """A person's name: a surname and a given name."""
    return rng.choice(SURNAMES) + rng.choice(GIVEN_NAMES)


def issue_wording(rng: random.Random, category: str) -> tuple[str, str, str]:
    """(subcategory, description, parties) of an issue of `category` (an issue category's
    value: dispute, hazard, lead, anomaly or other) in the words a ledger would use."""
    if category == "dispute":
        sub, topics = rng.choice(DISPUTES)
        a, b = person(rng), person(rng)
        return sub, f"{a}与{b}因{rng.choice(topics)}发生争执，需调解。", f"{a}、{b}"
    if category == "hazard":
        return "", f"{rng.choice(PLACES)}存在{rng.choice(HAZARDS)}隐患，已设警示，需尽快整改。", ""
    if category == "lead":
        return "", f"群众反映{rng.choice(LEADS)}，需核实。", ""
    if category == "anomaly":
        return "", f"{rng.choice(ANOMALIES)}。", ""
    return "", f"{rng.choice(OTHERS)}。", ""
